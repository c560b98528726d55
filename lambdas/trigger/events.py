"""The EventBridge event the `recording-ingested` rule delivers: one Kinesis record from the pipe.

The pipe forwards the Kinesis record unchanged as `detail` (base64 `data`), so this module is the
only place that knows that shape; the rest of the trigger sees a `Delivery`.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.shared.functions import base64_decode
from pydantic import BaseModel, field_validator

from lambdas.shared.schemas import EVENT_ID_PATTERN
from lambdas.trigger.errors import InvalidEvent

_SAFE_ID = re.compile(EVENT_ID_PATTERN)


class PipeKinesisDetail(BaseModel):
    eventSource: Literal["aws:kinesis"]
    eventID: str
    partitionKey: str
    sequenceNumber: str
    data: bytes
    approximateArrivalTimestamp: float | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> bytes:
        return base64_decode(value)


class PipeKinesisEvent(EventBridgeModel):
    detail: PipeKinesisDetail
    account: str | None = None  # unused here; moto's EventBridge (the local cloud) leaves it out


@dataclass(frozen=True)
class Delivery:
    """One record as it reached the trigger, with the identity that makes re-deliveries collapse."""

    record_id: str  # the record's event_id when it has a usable one, else a hash of its bytes
    data: bytes
    kinesis_event_id: str
    arrived_at: datetime

    def as_payload(self) -> dict[str, Any]:
        """JSON-ready form, for the idempotency layer (keyed on `record_id`)."""
        return {
            "record_id": self.record_id,
            "data": self.data.decode("latin-1"),
            "kinesis_event_id": self.kinesis_event_id,
            "arrived_at": self.arrived_at.isoformat(),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Delivery":
        return cls(
            record_id=payload["record_id"],
            data=payload["data"].encode("latin-1"),
            kinesis_event_id=payload["kinesis_event_id"],
            arrived_at=datetime.fromisoformat(payload["arrived_at"]),
        )


def record_id_of(data: bytes) -> str:
    """The record's own event_id when it is a safe id, otherwise the sha256 of its bytes.

    Re-deliveries of one record (Kinesis, the pipe, a Lambda retry, a producer retry) carry the same
    event_id; bytes that are not even JSON still hash the same each time.
    """
    try:
        candidate = json.loads(data).get("event_id")
    except (ValueError, AttributeError):
        candidate = None
    if isinstance(candidate, str) and _SAFE_ID.match(candidate):
        return candidate
    return hashlib.sha256(data).hexdigest()


def parse_delivery(event: dict[str, Any]) -> Delivery:
    """The one Kinesis record inside the event; InvalidEvent when the event has another shape."""
    try:
        parsed = parse(event=event, model=PipeKinesisEvent)
    except ValidationError as err:
        # Locations and messages only: the inputs may hold patient identifiers.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_url=False)[:3])
        raise InvalidEvent(f"not a Kinesis record from the ingest pipe ({problems})") from err
    detail = parsed.detail
    arrived = detail.approximateArrivalTimestamp
    arrived_at = datetime.fromtimestamp(arrived, timezone.utc) if arrived is not None else parsed.time
    return Delivery(
        record_id=record_id_of(detail.data),
        data=detail.data,
        kinesis_event_id=detail.eventID,
        arrived_at=arrived_at,
    )


def event_fingerprint(event: Any) -> str:
    """Stable id for an event that could not be parsed (its quarantine key)."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()
