"""S3 objects written once: the ledger, quarantine and prediction lines (DESIGN 4.3).

Deliveries are at-least-once, so every write here is conditional (`If-None-Match: *`): the first
delivery creates the object, a repeated one finds it there and changes nothing.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from lambdas.shared import aws


def date_partition(moment: datetime | None = None) -> str:
    """`dt=YYYY-MM-DD` of the given moment (UTC now by default): the partition Athena/Glue project."""
    return f"dt={(moment or datetime.now(timezone.utc)).strftime('%Y-%m-%d')}"


def to_json_lines(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(row, sort_keys=True, default=str) + "\n" for row in rows).encode()


def put_once(bucket: str, key: str, body: bytes, content_type: str = "application/x-ndjson") -> bool:
    """Create the object unless it exists; True when this call created it."""
    try:
        aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
    except ClientError as err:
        if err.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def put_json_lines_once(bucket: str, key: str, rows: Iterable[Mapping[str, Any]]) -> bool:
    return put_once(bucket, key, to_json_lines(rows))
