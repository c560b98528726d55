"""Where each record ends: the ledger `raw/records/` (accepted) or `quarantine/` (with a reason).

One object per record, named by the record's id and written once (`If-None-Match`), so a
re-delivery finds its object already there and changes nothing. The date partition comes from the
record (its `sent_at`) or its Kinesis arrival time, never from the clock of the delivery, so a
re-delivery on another day lands on the same key.
"""
from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from lambdas.shared import aws
from lambdas.shared.schemas import CommitRecord, RecordingRecord, dump_record, parse_record
from lambdas.shared.storage import date_partition, put_json_lines_once

logger = logging.getLogger(__name__)

LEDGER_PREFIX = "raw/records/"
QUARANTINE_PREFIX = "quarantine/"
_READERS = 16  # the ledger is many small objects: read them in parallel


def ledger_key(record_id: str, moment: datetime) -> str:
    return f"{LEDGER_PREFIX}{date_partition(moment)}/{record_id}.jsonl"


def quarantine_key(record_id: str, moment: datetime) -> str:
    return f"{QUARANTINE_PREFIX}{date_partition(moment)}/{record_id}.jsonl"


def write_accepted(bucket: str, record: RecordingRecord | CommitRecord) -> bool:
    """The record's ledger line; False when an earlier delivery already wrote it."""
    return put_json_lines_once(bucket, ledger_key(record.event_id, record.sent_at), [dump_record(record)])


def raw_record(data: bytes) -> tuple[Any, str]:
    """The record as it came, for a quarantine line: its JSON, else its text, else base64."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64"
    try:
        return json.loads(text), "json"
    except ValueError:
        return text, "text"


def write_quarantined(
    bucket: str,
    record_id: str,
    data: bytes,
    moment: datetime,
    *,
    reason: str,
    detail: str,
    field: str | None = None,
) -> bool:
    """The record's quarantine line with its machine-readable reason; False when already there."""
    record, encoding = raw_record(data)
    line = {
        "record_id": record_id,
        "reason": reason,
        "detail": detail,
        "field": field,
        "record": record,
        "record_encoding": encoding,
        "quarantined_at": datetime.now(timezone.utc).isoformat(),
    }
    return put_json_lines_once(bucket, quarantine_key(record_id, moment), [line])


def _keys(bucket: str, prefix: str) -> Iterator[str]:
    for page in aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def _read_lines(bucket: str, key: str) -> list[str]:
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [line for line in body.splitlines() if line.strip()]


def read_recordings(bucket: str) -> list[RecordingRecord]:
    """Every accepted recording in the ledger (all datasets, all days), re-validated by the schema."""
    keys = list(_keys(bucket, LEDGER_PREFIX))
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        batches = list(pool.map(lambda key: _read_lines(bucket, key), keys))
    recordings: list[RecordingRecord] = []
    for key, lines in zip(keys, batches):
        for line in lines:
            try:
                record = parse_record(line, bucket=bucket)
            except ValidationError:
                # Only the trigger writes here; a bad line means tampering: skip it, loudly.
                logger.warning("unreadable ledger line skipped", extra={"key": key})
                continue
            if isinstance(record, RecordingRecord):
                recordings.append(record)
    return recordings
