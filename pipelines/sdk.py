"""Adjustments to the SageMaker SDK v2 this project relies on, applied once on import.

The SDK re-validates its defaults config (our telemetry opt-out, `sagemaker_config.yaml`) against
its JSON schema on *every* config lookup, and `jsonschema.validate` re-checks the whole schema each
time: rendering this pipeline's definition made ~45 lookups, most of a minute of CPU. The config
cannot change during a process, so each distinct config is validated once; a bad one still fails
on its first lookup exactly as before.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sagemaker.utils

_VALIDATED_MARK = "_samay_validated_once"


def validate_once(validate: Callable[[Any], None]) -> Callable[[Any], None]:
    validated: set[str] = set()

    def validate_config(sagemaker_config: Any = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in validated:
            validate(sagemaker_config)
            validated.add(key)

    setattr(validate_config, _VALIDATED_MARK, True)
    return validate_config


if not getattr(sagemaker.utils.validate_sagemaker_config, _VALIDATED_MARK, False):
    sagemaker.utils.validate_sagemaker_config = validate_once(sagemaker.utils.validate_sagemaker_config)
