"""The Kinesis ingest records, schema_version 1 (DESIGN 4.2): one source of truth for producer and trigger.

`samay push` builds these models and the trigger Lambda validates what arrives with them, so a
field changes in one place. Validation is strict (JSON types are not coerced: a numeric diagnosis
is an error, not "1"), unknown fields are refused, and `audio_uri` must name an object below
`raw/audio/` of the configured bucket (passed as validation context `{"bucket": ...}`) with no
path tricks. Errors keep machine-readable codes (`error.type`) that the trigger turns into
quarantine reasons.
"""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1
AUDIO_PREFIX = "raw/audio/"

# Names that end up in S3 keys and file names: no separators, no leading dot.
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{7,127}$"
SafeName = Annotated[str, StringConstraints(pattern=SAFE_NAME_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PatientId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Diagnosis = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MetadataValue = str | int | float | bool | None


def audio_uri(bucket: str, dataset: str, recording_id: str) -> str:
    """Where `samay push` puts a recording's audio (the layout preprocess maps back to files)."""
    return f"s3://{bucket}/{AUDIO_PREFIX}{dataset}/{recording_id}.wav"


def is_safe_name(value: object) -> bool:
    """True for a string usable as a dataset or recording id (in S3 keys, file names, state keys)."""
    return isinstance(value, str) and re.match(SAFE_NAME_PATTERN, value) is not None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://bucket/key` URI."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: EventId
    dataset: SafeName
    sent_at: AwareDatetime


class RecordingRecord(_Record):
    """One labelled (or unlabelled: diagnosis None) recording whose audio is already in S3."""

    type: Literal["recording"] = "recording"
    recording_id: SafeName
    patient_id: PatientId
    audio_uri: str
    sha256: Sha256Hex
    diagnosis: Diagnosis | None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    recorded_at: AwareDatetime | None = None

    @field_validator("audio_uri")
    @classmethod
    def _confined_to_bucket(cls, value: str, info: ValidationInfo) -> str:
        """Refuse URIs the trigger must never read: other buckets, other prefixes, traversal."""
        if not value.startswith("s3://"):
            raise PydanticCustomError("invalid_audio_uri", "audio_uri must be an s3:// URI")
        bucket, _, key = value[len("s3://"):].partition("/")
        segments = key.split("/")
        if ".." in segments or "." in segments or "\\" in key:
            raise PydanticCustomError("path_traversal", "audio_uri key contains '.' or '..' segments")
        if not bucket or not key or key.startswith("/") or "" in segments:
            raise PydanticCustomError("invalid_audio_uri", "audio_uri needs a bucket and a relative key")
        expected = (info.context or {}).get("bucket")
        if expected is not None and bucket != expected:
            raise PydanticCustomError(
                "audio_uri_outside_bucket", "audio_uri names bucket {bucket}, not {expected}",
                {"bucket": bucket, "expected": expected},
            )
        if not key.startswith(AUDIO_PREFIX):
            raise PydanticCustomError("audio_uri_outside_prefix", "audio_uri key is not below raw/audio/")
        return value

    @property
    def labelled(self) -> bool:
        return self.diagnosis is not None


class CommitRecord(_Record):
    """Closes a push: the dataset holds `count` recordings."""

    type: Literal["commit"] = "commit"
    count: Annotated[int, Field(ge=0)]


IngestRecord = Annotated[RecordingRecord | CommitRecord, Field(discriminator="type")]
_ADAPTER: TypeAdapter[RecordingRecord | CommitRecord] = TypeAdapter(IngestRecord)


def parse_record(data: str | bytes, *, bucket: str | None = None) -> RecordingRecord | CommitRecord:
    """Validate one record's JSON text; raises pydantic.ValidationError with typed errors."""
    return _ADAPTER.validate_json(data, strict=True, context={"bucket": bucket})


def dump_record(record: RecordingRecord | CommitRecord) -> dict[str, Any]:
    """The record as JSON-ready data, exactly what goes on the stream and into the ledger."""
    return record.model_dump(mode="json")


def encode_record(record: RecordingRecord | CommitRecord) -> bytes:
    return json.dumps(dump_record(record), sort_keys=True, separators=(",", ":")).encode()

