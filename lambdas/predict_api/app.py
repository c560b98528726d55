"""samay-predict-api: API Gateway (HTTP API v2 or REST proxy v1) -> the same scoring code as samay-inference.

`POST` a WAV as the request body (binary, so API Gateway hands it over base64-encoded) and get the
endpoint's prediction back as JSON. Optional `recording_id` (query string or `X-Recording-Id`
header) is echoed. Bad audio -> 400 naming the reason; endpoint down after the retries -> 503;
an endpoint answer that breaks the contract -> 502. Nothing is stored: uploads to
`inference/incoming/` are the stored path.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared.config import Settings
from lambdas.shared.scoring import (
    EndpointUnavailable,
    InvalidAudio,
    InvalidEndpointResponse,
    RetryPolicy,
    ScoringError,
    score_wav,
)

logger = Logger()
metrics = Metrics(namespace="Samay")

_STATUS = {InvalidAudio: 400, EndpointUnavailable: 503, InvalidEndpointResponse: 502}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayProxyEventV2(event) if event.get("version") == "2.0" else APIGatewayProxyEvent(event)
    response = handle(request, Settings.from_env(), RetryPolicy.from_env())
    metrics.add_metric(name=f"ApiStatus{response['statusCode']}", unit=MetricUnit.Count, value=1)
    return response


def handle(request: APIGatewayProxyEvent | APIGatewayProxyEventV2, settings: Settings, policy: RetryPolicy) -> dict[str, Any]:
    if request.http_method.upper() != "POST":
        return _response(405, {"error": "method_not_allowed", "message": "POST a WAV file as the request body"})
    recording_id = request.get_query_string_value("recording_id") or request.get_header_value("x-recording-id")
    name = recording_id or "request body"
    try:
        audio = _body_bytes(request, name)
        scored = score_wav(audio, name=name, endpoint_name=settings.endpoint_name, policy=policy)
    except ScoringError as err:
        status = next((code for kind, code in _STATUS.items() if isinstance(err, kind)), 400)
        logger.warning("prediction refused", extra={"status": status, "reason": err.reason, "error": err.message})
        return _response(status, {"error": err.reason, "message": str(err)}, retry_after=status == 503)
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=scored.latency_ms)
    logger.info("prediction served", extra={"model_version": scored.prediction.model_version, "attempts": scored.attempts})
    body = ({"recording_id": recording_id} if recording_id else {}) | scored.prediction.model_dump()
    return _response(200, body)


def _body_bytes(request: APIGatewayProxyEvent | APIGatewayProxyEventV2, name: str) -> bytes:
    """The raw WAV: base64-decoded when API Gateway flagged the body as binary."""
    body = request.body or ""
    if not request.is_base64_encoded:
        return body.encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidAudio(name, "the body is flagged base64 but does not decode", "bad_encoding") from None


def _response(status: int, body: dict[str, Any], retry_after: bool = False) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} | ({"Retry-After": "5"} if retry_after else {})
    return {"statusCode": status, "headers": headers, "body": json.dumps(body), "isBase64Encoded": False}
