"""samay-predict-api with API Gateway event fixtures (HTTP API v2 and REST proxy v1) and the scripted runtime."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from lambdas.predict_api import app
from lambdas.shared import config
from tests.lambdas.context import LambdaContext
from tests.lambdas.runtime_stub import PROBABILITIES, RuntimeStub
from tests.lambdas.wav_bytes import wav_bytes

EVENTS = Path(__file__).parents[1] / "events"


def api_event(version: str, body: bytes, **changes: Any) -> dict[str, Any]:
    """The stored API Gateway event with this body (base64, as API Gateway passes binary media)."""
    event = json.loads((EVENTS / f"apigw_{version}_predict.json").read_text())
    event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True, **changes)
    return event


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = app.lambda_handler(event, LambdaContext(function_name=config.PREDICT_API_FUNCTION))
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(("version", "recording_id"), [("v2", "BP1"), ("v1", "BP2")])
def test_a_wav_gets_the_prediction(runtime_stub: RuntimeStub, version: str, recording_id: str) -> None:
    # GIVEN a WAV posted through API Gateway (recording id in the query string for v2, a header for v1)
    audio = wav_bytes(2.0)
    # WHEN the function handles it
    status, body = call(api_event(version, audio))
    # THEN 200 with the endpoint's prediction, and the endpoint got the raw WAV as audio/wav
    assert status == 200
    assert body == {"recording_id": recording_id, "label": "Normal", "probabilities": PROBABILITIES, "model_version": "1", "windows": 1}
    assert runtime_stub.calls() == [{"path": f"/endpoints/{config.ENDPOINT_NAME}/invocations", "content_type": "audio/wav", "bytes": len(audio)}]


def test_recording_id_is_optional(runtime_stub: RuntimeStub) -> None:
    status, body = call(api_event("v2", wav_bytes(2.0), queryStringParameters=None, rawQueryString=""))
    assert status == 200 and "recording_id" not in body and sum(body["probabilities"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("audio", "reason"),
    [(b"", "empty"), (b"<html>not audio</html>", "not_wav"), (wav_bytes(2.0)[:-100], "truncated"), (wav_bytes(0.2), "too_short")],
)
def test_bad_audio_is_a_400_naming_the_reason(runtime_stub: RuntimeStub, audio: bytes, reason: str) -> None:
    status, body = call(api_event("v2", audio))
    assert (status, body["error"]) == (400, reason)
    assert body["message"].startswith("BP1: ")
    assert runtime_stub.calls() == []


def test_body_that_is_not_base64_is_a_400(runtime_stub: RuntimeStub) -> None:
    event = api_event("v1", b"")
    event["body"] = "%%% not base64 %%%"
    status, body = call(event)
    assert (status, body["error"]) == (400, "bad_encoding")


def test_audio_the_endpoint_rejects_is_a_400(runtime_stub: RuntimeStub) -> None:
    runtime_stub.script({"status": 424, "error": "ModelError", "original_status": 400, "message": "audio is silent"})
    status, body = call(api_event("v2", wav_bytes(2.0)))
    assert (status, body["error"]) == (400, "rejected_by_endpoint") and "audio is silent" in body["message"]


def test_endpoint_down_after_retries_is_a_503(runtime_stub: RuntimeStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_INVOKE_MAX_ATTEMPTS", "2")
    runtime_stub.script({"status": 503, "error": "ServiceUnavailable"}, {"status": 503, "error": "ServiceUnavailable"})
    response = app.lambda_handler(api_event("v2", wav_bytes(2.0)), LambdaContext(function_name=config.PREDICT_API_FUNCTION))
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"]
    assert json.loads(response["body"])["error"] == "endpoint_unavailable"
    assert len(runtime_stub.calls()) == 2


def test_endpoint_recovering_within_the_retries_is_a_200(runtime_stub: RuntimeStub) -> None:
    runtime_stub.script({"status": 503, "error": "ServiceUnavailable"}, {"status": 503, "error": "ServiceUnavailable"})
    status, body = call(api_event("v1", wav_bytes(2.0)))
    assert (status, body["label"], len(runtime_stub.calls())) == (200, "Normal", 3)


def test_contract_breaking_answer_is_a_502(runtime_stub: RuntimeStub) -> None:
    runtime_stub.script({"status": 200, "body": {"label": "Normal"}})
    status, body = call(api_event("v2", wav_bytes(2.0)))
    assert (status, body["error"]) == (502, "bad_endpoint_response")


def test_only_post_is_accepted(runtime_stub: RuntimeStub) -> None:
    status, body = call(api_event("v1", wav_bytes(2.0), httpMethod="GET"))
    assert (status, body["error"]) == (405, "method_not_allowed") and runtime_stub.calls() == []
