"""Local Lambda: name/ARN resolution, the context and environment a handler sees, and errors."""
from __future__ import annotations

import os
import uuid

import pytest

from infra.local.functions import (
    FUNCTIONS,
    FunctionError,
    FunctionNotFound,
    invoke_function,
    resolve_function_name,
)
from tests.local import lambda_handlers

TEST_FUNCTIONS = {
    "echo": "tests.local.lambda_handlers:echo_handler",
    "boom": "tests.local.lambda_handlers:failing_handler",
    "marshal": "tests.local.lambda_handlers:unserialisable_handler",
    "missing-module": "tests.local.no_such_module:lambda_handler",
}
ARN = "arn:aws:lambda:us-east-1:123456789012:function:echo"


def test_functions_table_names_every_project_handler() -> None:
    assert FUNCTIONS == {
        "samay-trigger": "lambdas.trigger.app:lambda_handler",
        "samay-inference": "lambdas.inference.app:lambda_handler",
        "samay-deploy": "lambdas.deploy.app:lambda_handler",
        "samay-predict-api": "lambdas.predict_api.app:lambda_handler",
    }


@pytest.mark.parametrize(
    "given",
    ["echo", ARN, f"{ARN}:$LATEST", f"{ARN}:live", "123456789012:function:echo"],
)
def test_resolve_function_name_accepts_names_and_arns(given: str) -> None:
    assert resolve_function_name(given) == "echo"


def test_invoke_function_gives_handler_lambda_context_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a bucket configured for the cloud and no function variables in this process
    monkeypatch.setenv("SAMAY_BUCKET", "my-bucket")
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    event = {"id": "r1", "nested": {"n": 1}}

    # WHEN the function is invoked by name
    result = invoke_function("echo", event, functions=TEST_FUNCTIONS)

    # THEN the handler saw a JSON copy of the event, Lambda's context and the function environment
    assert result["event"] == {"id": "r1", "nested": {"n": 1}}
    assert "mutated" not in event
    assert result["function_name"] == "echo"
    assert result["function_version"] == "$LATEST"
    assert result["invoked_function_arn"] == ARN
    assert result["memory_limit_in_mb"] > 0
    assert uuid.UUID(result["aws_request_id"])
    assert result["log_group_name"] == "/aws/lambda/echo"
    assert 0 < result["remaining_ms"] <= 900_000
    assert result["env"] == {"AWS_LAMBDA_FUNCTION_NAME": "echo", "POWERTOOLS_SERVICE_NAME": "echo", "SAMAY_BUCKET": "my-bucket"}
    # AND the process environment is restored afterwards
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_invoke_function_by_arn_keeps_the_invoked_arn() -> None:
    result = invoke_function(f"{ARN}:live", {}, functions=TEST_FUNCTIONS)
    assert result["function_name"] == "echo"
    assert result["invoked_function_arn"] == f"{ARN}:live"


def test_invoke_function_gives_each_call_its_own_request_id() -> None:
    first = invoke_function("echo", {}, functions=TEST_FUNCTIONS)
    second = invoke_function("echo", {}, functions=TEST_FUNCTIONS)
    assert first["aws_request_id"] != second["aws_request_id"]


def test_invoke_function_unknown_name_is_resource_not_found() -> None:
    with pytest.raises(FunctionNotFound) as caught:
        invoke_function("samay-nope", {}, functions=TEST_FUNCTIONS)
    assert caught.value.code == "ResourceNotFoundException"
    assert str(caught.value) == "Function not found: arn:aws:lambda:us-east-1:123456789012:function:samay-nope"


def test_invoke_function_handler_exception_is_function_error_with_cause() -> None:
    with pytest.raises(FunctionError) as caught:
        invoke_function("boom", {"id": "r9"}, functions=TEST_FUNCTIONS)
    err = caught.value
    assert (err.function_name, err.error_type) == ("boom", "InvalidPayload")
    assert err.message == "record r9 has no audio_uri"
    assert isinstance(err.__cause__, lambda_handlers.InvalidPayload)


def test_invoke_function_unserialisable_result_is_marshal_error() -> None:
    with pytest.raises(FunctionError) as caught:
        invoke_function("marshal", {}, functions=TEST_FUNCTIONS)
    assert caught.value.error_type == "Runtime.MarshalError"


def test_invoke_function_missing_handler_module_is_import_error() -> None:
    with pytest.raises(FunctionError) as caught:
        invoke_function("missing-module", {}, functions=TEST_FUNCTIONS)
    assert caught.value.error_type == "Runtime.ImportModuleError"
    assert "tests.local.no_such_module" in caught.value.message
