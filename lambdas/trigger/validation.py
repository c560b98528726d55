"""Is a record acceptable? Schema first, then the audio it points at (exists, same sha256).

Every refusal is a `RecordRejected` with a machine-readable reason; S3 trouble that may pass
(throttling, 5xx, network) is an `ObjectCheckFailed` and is raised for a retry instead.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import closing
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from lambdas.shared import aws
from lambdas.shared.schemas import SCHEMA_VERSION, CommitRecord, RecordingRecord, parse_record, split_s3_uri
from lambdas.trigger.errors import ObjectCheckFailed, RecordRejected

_CHUNK = 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}  # GetObject says NoSuchKey; one request checks both
# pydantic error types -> quarantine reasons; custom types from the schema pass through unchanged.
_REASONS = {
    "missing": "missing_field",
    "extra_forbidden": "unexpected_field",
    "union_tag_not_found": "missing_field",
    "union_tag_invalid": "unknown_type",
    "json_invalid": "not_json",
}
_CUSTOM = {"invalid_audio_uri", "path_traversal", "audio_uri_outside_bucket", "audio_uri_outside_prefix"}


def parse_json(data: bytes) -> Any:
    """The record's JSON value; `not_json` when the bytes are not UTF-8 JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise RecordRejected("not_json", f"record is not UTF-8 JSON ({type(err).__name__})") from err


def validate_record(data: bytes, bucket: str) -> RecordingRecord | CommitRecord:
    """The schema check: a typed record or a `RecordRejected` naming the first problem."""
    value = parse_json(data)
    if not isinstance(value, dict):
        raise RecordRejected("not_object", f"record is a JSON {type(value).__name__}, not an object")
    version = value.get("schema_version")
    if version is None:
        raise RecordRejected("missing_field", "schema_version is missing", field="schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise RecordRejected("unknown_schema_version", f"schema_version {version!r} is not {SCHEMA_VERSION}",
                             field="schema_version")
    try:
        return parse_record(data, bucket=bucket)
    except ValidationError as err:
        raise _rejection(err) from err


def _rejection(err: ValidationError) -> RecordRejected:
    first = err.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"][1:]) or None  # loc[0] is the union tag
    reason = _REASONS.get(first["type"], first["type"] if first["type"] in _CUSTOM else "invalid_field")
    detail = f"{field}: {first['msg']}" if field else first["msg"]
    if err.error_count() > 1:
        detail += f" (+{err.error_count() - 1} more)"
    return RecordRejected(reason, detail, field=field)


def check_audio(record: RecordingRecord) -> None:
    """The audio exists and its bytes hash to the record's sha256 (streamed, never held whole)."""
    bucket, key = split_s3_uri(record.audio_uri)
    s3 = aws.client("s3")
    digest = hashlib.sha256()
    try:
        # closing(): a read that fails midway still gives the connection back to the pool
        with closing(s3.get_object(Bucket=bucket, Key=key)["Body"]) as body:
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                digest.update(chunk)
    except ClientError as err:
        if err.response["Error"]["Code"] in _NOT_FOUND:
            raise RecordRejected("missing_object", "audio object does not exist", field="audio_uri") from err
        raise ObjectCheckFailed(f"S3 could not check the audio: {err.response['Error']['Code']}") from err
    except BotoCoreError as err:
        raise ObjectCheckFailed(f"S3 could not check the audio: {type(err).__name__}") from err
    if digest.hexdigest() != record.sha256:
        raise RecordRejected("sha256_mismatch", "audio bytes do not hash to the record's sha256", field="sha256")


def validate(data: bytes, bucket: str) -> RecordingRecord | CommitRecord:
    """Schema, then (for recordings) the audio: what the ledger may hold."""
    record = validate_record(data, bucket)
    if isinstance(record, RecordingRecord):
        check_audio(record)
    return record
