"""The Lambda handlers cold-start without the ML stack."""
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "librosa", "numpy", "soundfile", "sklearn", "steps")


@pytest.mark.parametrize("module", ["lambdas.inference.app", "lambdas.predict_api.app"])
def test_handler_module_imports_no_ml_stack(module: str) -> None:
    # WHEN the handler module is imported in a fresh interpreter
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # THEN none of the heavy packages came with it
    assert result.stdout.strip() == ""
