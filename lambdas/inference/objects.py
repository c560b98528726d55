"""The uploaded recordings as the inference function sees them: parsed from S3 event records,
read from S3 (exact version when the bucket is versioned), and set aside under `inference/failed/`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from botocore.exceptions import ClientError

from lambdas.shared import aws
from lambdas.shared.predictions import utc_now_iso
from lambdas.shared.scoring import ScoringError

INCOMING_PREFIX = "inference/incoming/"
FAILED_PREFIX = "inference/failed/"
METADATA_FIELDS = ("patient_id", "location", "device")


class ObjectMissing(ScoringError):
    """The object (or this version of it) is gone: nothing left to score or to copy aside."""

    reason = "object_missing"


@dataclass(frozen=True)
class IncomingObject:
    """One uploaded recording named by an S3 event record."""

    bucket: str
    key: str
    size: int
    etag: str = ""
    version_id: str | None = None

    @classmethod
    def from_record(cls, record: S3EventRecord) -> "IncomingObject":
        obj = record.s3.get_object
        version = obj.version_id if obj.version_id not in (None, "", "null") else None
        return cls(bucket=record.s3.bucket.name, key=unquote_plus(obj.key), size=obj.size, etag=obj.etag, version_id=version)

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def recording_id(self) -> str:
        """The object's name without `.wav` (any case)."""
        name = self.name
        return name[:-4] if name.lower().endswith(".wav") else name

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_incoming(self) -> bool:
        return self.key.startswith(INCOMING_PREFIX)


@dataclass(frozen=True)
class FetchedObject:
    """The bytes of the recording and what its uploader said about it (S3 user metadata)."""

    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class ObjectHead:
    """Size and uploader metadata of the exact version, known before any byte is downloaded."""

    size: int
    metadata: dict[str, str] = field(default_factory=dict)


def read_head(obj: IncomingObject) -> ObjectHead:
    """HeadObject: the real size (the limit is checked on it) and patient_id/location/device."""
    response = _call(obj, "head_object")
    return ObjectHead(int(response["ContentLength"]), _known_metadata(response.get("Metadata", {})))


def download(obj: IncomingObject) -> bytes:
    return _call(obj, "get_object")["Body"].read()


def _call(obj: IncomingObject, operation: str) -> dict:
    """HeadObject/GetObject of exactly the version the event named; ObjectMissing if it was deleted since."""
    try:
        return getattr(aws.client("s3"), operation)(**_source(obj))
    except ClientError as err:
        code = err.response["Error"]["Code"]
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            raise ObjectMissing(obj.name, f"{obj.uri} no longer exists ({code})") from None
        raise


def _source(obj: IncomingObject) -> dict[str, str]:
    return {"Bucket": obj.bucket, "Key": obj.key} | ({"VersionId": obj.version_id} if obj.version_id else {})


def _known_metadata(raw: dict[str, str]) -> dict[str, str]:
    """patient_id, location, device from the user metadata (`x-amz-meta-patient_id` or `-patient-id`)."""
    normalised = {key.lower().replace("-", "_"): value for key, value in raw.items()}
    return {name: normalised[name] for name in METADATA_FIELDS if normalised.get(name)}


def set_aside(obj: IncomingObject, error: ScoringError) -> str:
    """Copy the recording to `inference/failed/<recording_id>.wav` with a `.json` beside it saying why.

    Returns the URI of the reason file. A server-side copy: no download, so it works for oversized files too.
    """
    s3 = aws.client("s3")
    base = f"{FAILED_PREFIX}{obj.recording_id}"
    s3.copy_object(Bucket=obj.bucket, Key=f"{base}.wav", CopySource=_source(obj))
    reason = {
        "recording_id": obj.recording_id,
        "source": obj.uri,
        "version_id": obj.version_id,
        "reason": error.reason,
        "error": str(error),
        "failed_at": utc_now_iso(),
    }
    s3.put_object(Bucket=obj.bucket, Key=f"{base}.json", Body=json.dumps(reason).encode(), ContentType="application/json")
    return f"s3://{obj.bucket}/{base}.json"
