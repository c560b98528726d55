"""The stored prediction (DESIGN 4.4) and its two homes: DynamoDB `samay-predictions` for lookups
by recording or patient, one S3 JSON line under `predictions/dt=YYYY-MM-DD/` for analytics.

Both writes are conditional, so a re-delivered S3 event, a retried invocation or two concurrent
deliveries of one upload leave exactly one item and one line per (recording_id, model_version).
The S3 line is derived from the item that won the DynamoDB write, so a retry after a crash between
the two writes completes the pair instead of writing a second, different line.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from lambdas.shared import aws
from lambdas.shared.storage import put_json_lines_once

NO_MODEL_VERSION = "none"
PREDICTIONS_PREFIX = "predictions/"
_SERIALIZER, _DESERIALIZER = TypeSerializer(), TypeDeserializer()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Prediction(BaseModel):
    """One scored (or unscorable) recording: a DynamoDB item and the same fields as one S3 JSON line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recording_id: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    status: Literal["OK", "FAILED"]
    predicted_label: str | None = None
    probabilities: dict[str, float] | None = None
    windows: int | None = None
    error: str | None = None
    error_reason: str | None = None
    patient_id: str | None = None
    location: str | None = None
    device: str | None = None
    model_package_arn: str | None = None
    endpoint_name: str | None = None
    latency_ms: float | None = None
    s3_uri: str | None = None
    audio_sha256: str | None = None
    created_at: str = Field(default_factory=utc_now_iso)

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item: floats as Decimal, absent fields left out (the patient GSI is sparse)."""
        return {name: _to_dynamo(value) for name, value in self.model_dump(exclude_none=True).items()}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Prediction":
        return cls.model_validate({name: _from_dynamo(value) for name, value in item.items()})

    def to_line(self) -> dict[str, Any]:
        """The S3 JSON line: every field, nulls included, so analytics sees one fixed schema."""
        return self.model_dump()

    @property
    def line_key(self) -> str:
        """`predictions/dt=<day of created_at>/<recording_id>.<model_version>.jsonl`: one per item."""
        return f"{PREDICTIONS_PREFIX}dt={self.created_at[:10]}/{self.recording_id}.{self.model_version}.jsonl"


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _to_dynamo(inner) for key, inner in value.items()}
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(inner) for key, inner in value.items()}
    return value


def store_prediction(prediction: Prediction, *, table: str, bucket: str) -> tuple[Prediction, bool]:
    """Write the item (once per recording_id + model_version) and its S3 line.

    Returns the prediction that is stored (the earlier one when this was a repeat) and whether this
    call created it. DynamoDB or S3 errors other than the write-once conditions propagate: they are
    transient infrastructure failures the caller lets the platform retry.
    """
    try:
        aws.client("dynamodb").put_item(
            TableName=table,
            Item=_serialize(prediction.to_item()),
            ConditionExpression="attribute_not_exists(recording_id)",
        )
        stored, created = prediction, True
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        stored, created = _get(table, prediction.recording_id, prediction.model_version), False
    ensure_line(stored, bucket=bucket)
    return stored, created


def ensure_line(prediction: Prediction, *, bucket: str) -> bool:
    """Write the S3 line of a stored prediction unless it is there (it may be missing after a crash between the writes)."""
    return put_json_lines_once(bucket, prediction.line_key, [prediction.to_line()])


def find_scored(table: str, recording_id: str, audio_sha256: str) -> Prediction | None:
    """The OK prediction already made for these exact bytes of this recording, if any."""
    response = aws.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="recording_id = :r",
        FilterExpression="audio_sha256 = :s AND #status = :ok",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=_serialize({":r": recording_id, ":s": audio_sha256, ":ok": "OK"}),
        ConsistentRead=True,
    )
    items = response.get("Items", [])
    return Prediction.from_item(_deserialize(items[0])) if items else None


def predictions_for(table: str, recording_id: str) -> list[Prediction]:
    """Every stored prediction of a recording (one per model version that scored or failed it)."""
    response = aws.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="recording_id = :r",
        ExpressionAttributeValues=_serialize({":r": recording_id}),
        ConsistentRead=True,
    )
    return [Prediction.from_item(_deserialize(item)) for item in response.get("Items", [])]


def _get(table: str, recording_id: str, model_version: str) -> Prediction:
    key = _serialize({"recording_id": recording_id, "model_version": model_version})
    item = aws.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    return Prediction.from_item(_deserialize(item))


def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
