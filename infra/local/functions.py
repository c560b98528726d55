"""Local Lambda: invoke the project's handlers in-process, the way the Lambda runtime calls them.

The router (EventBridge rules, S3 notifications) and the pipeline executor (Lambda steps) call
`invoke_function(name_or_arn, event)`. What a handler sees is what Lambda gives it: a JSON copy of
the event, a context object with Lambda's attributes, and the function's environment variables
(names from `lambdas.shared.config`). What the caller gets back is the JSON round trip of the
result, so a handler returning something Lambda could not serialise fails here too.

The function environment lives in `os.environ`, which is process-wide, so invocations in one process
are serialised by a lock; Lambda isolates functions in separate sandboxes instead.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lambdas.shared.config import LOCAL_ACCOUNT_ID, Settings

logger = logging.getLogger(__name__)

FUNCTIONS: dict[str, str] = {
    "samay-trigger": "lambdas.trigger.app:lambda_handler",
    "samay-inference": "lambdas.inference.app:lambda_handler",
    "samay-deploy": "lambdas.deploy.app:lambda_handler",
    "samay-predict-api": "lambdas.predict_api.app:lambda_handler",
}
MEMORY_LIMIT_MB = 1024
TIMEOUT_SECONDS = 300

_ENV_LOCK = threading.RLock()


class FunctionNotFound(LookupError):
    """Lambda's ResourceNotFoundException: no function of that name (or ARN) exists."""

    code = "ResourceNotFoundException"

    def __init__(self, function_name_or_arn: str, arn: str) -> None:
        super().__init__(f"Function not found: {arn}")
        self.function_name_or_arn = function_name_or_arn


class FunctionError(RuntimeError):
    """The handler raised (Lambda's FunctionError "Unhandled"); the original is the __cause__."""

    def __init__(self, function_name: str, error_type: str, message: str) -> None:
        super().__init__(f"{function_name} failed: {error_type}: {message}")
        self.function_name = function_name
        self.error_type = error_type
        self.message = message


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = MEMORY_LIMIT_MB
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_seconds: int = TIMEOUT_SECONDS
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        day = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream_name = self.log_stream_name or f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_arn(name: str, region: str | None = None) -> str:
    region = region or Settings.from_env().region
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{name}"


def resolve_function_name(function_name_or_arn: str) -> str:
    """The function name in a bare name, a full ARN (optionally qualified) or a partial ARN."""
    parts = function_name_or_arn.split(":")
    if function_name_or_arn.startswith("arn:") and len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]
    return function_name_or_arn


def function_environment(function_name: str, handler: str) -> dict[str, str]:
    """The variables the stack sets on every function, plus those the Lambda runtime sets itself."""
    settings = Settings.from_env()
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_LIMIT_MB),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_REGION": settings.region,
        "_HANDLER": handler,
        "POWERTOOLS_SERVICE_NAME": function_name,
        "SAMAY_BUCKET": settings.bucket,
        "SAMAY_STREAM": settings.stream_name,
        "SAMAY_EVENT_BUS": settings.event_bus_name,
        "SAMAY_PREDICTIONS_TABLE": settings.predictions_table,
        "SAMAY_IDEMPOTENCY_TABLE": settings.idempotency_table,
        "SAMAY_PIPELINE_NAME": settings.pipeline_name,
        "SAMAY_MODEL_PACKAGE_GROUP": settings.model_package_group,
        "SAMAY_ENDPOINT_NAME": settings.endpoint_name,
    }


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _load_handler(handler: str) -> Any:
    module_name, _, attribute = handler.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def invoke_function(
    function_name_or_arn: str, event: dict, functions: Mapping[str, str] | None = None
) -> Any:
    """Invoke a function synchronously (RequestResponse) and return its JSON result.

    `functions` replaces the FUNCTIONS table (tests register their own handler modules).
    Raises FunctionNotFound for an unknown name and FunctionError when the handler raises.
    """
    table = FUNCTIONS if functions is None else functions
    name = resolve_function_name(function_name_or_arn)
    if name not in table:
        raise FunctionNotFound(function_name_or_arn, function_arn(name))
    handler_path = table[name]
    invoked_arn = function_name_or_arn if function_name_or_arn.startswith("arn:") else function_arn(name)
    payload = json.loads(json.dumps(event))
    with _ENV_LOCK, _environment(function_environment(name, handler_path)):
        context = LambdaContext(function_name=name, invoked_function_arn=invoked_arn)
        logger.info("invoke %s request_id=%s", name, context.aws_request_id)
        try:
            handler = _load_handler(handler_path)
        except (ImportError, AttributeError) as exc:
            raise FunctionError(name, "Runtime.ImportModuleError", f"{handler_path}: {exc}") from exc
        try:
            result = handler(payload, context)
        except Exception as exc:
            raise FunctionError(name, type(exc).__name__, str(exc)) from exc
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            raise FunctionError(name, "Runtime.MarshalError", f"result is not JSON: {exc}") from exc
