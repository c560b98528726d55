"""Pipeline definitions and the `samay` CLI: the only package that imports the SageMaker SDK.

The SDK reads its settings when first imported, so the project's own settings are put in place
here, before any `import sagemaker`: no v2 deprecation banner, telemetry opted out.
"""
import os
from pathlib import Path

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
os.environ.setdefault("SAGEMAKER_USER_CONFIG_OVERRIDE", str(Path(__file__).with_name("sagemaker_config.yaml")))
