"""Handlers the local-Lambda tests register in place of the project's functions."""
from __future__ import annotations

import os
from typing import Any


class InvalidPayload(ValueError):
    """A domain error the failing handler raises."""


def echo_handler(event: dict, context: Any) -> dict:
    """Returns what a handler can observe: the event, the context and the function environment."""
    event["mutated"] = True
    return {
        "event": {k: v for k, v in event.items() if k != "mutated"},
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {name: os.environ.get(name) for name in ("AWS_LAMBDA_FUNCTION_NAME", "POWERTOOLS_SERVICE_NAME", "SAMAY_BUCKET")},
    }


def failing_handler(event: dict, context: Any) -> dict:
    raise InvalidPayload(f"record {event.get('id')} has no audio_uri")


def unserialisable_handler(event: dict, context: Any) -> object:
    return {"when": object()}
