"""S3 in and out of a job's local container tree, with SageMaker's input semantics.

Which objects an input names:
- `S3Prefix`: the object whose key equals the prefix (it lands as `<LocalPath>/<basename>`), else
  every object under `<prefix>/` (each lands at its key relative to the prefix). This is the SDK's
  local-mode rule (`sagemaker.utils.download_folder`); it never picks up `raw/audio2/` for
  `raw/audio`.
- `ManifestFile`: a JSON list `[{"prefix": "s3://b/p/"}, "rel/key1", ...]`; each object lands at
  its relative key.

`ShardedByS3Key` gives instance i (0-based) of n the objects at positions i, i+n, i+2n, ... of the
key-sorted list (round robin). SageMaker documents only that each instance gets a disjoint subset of
about 1/n of the objects; round robin over sorted keys is deterministic, disjoint, complete, and
balances sizes better than contiguous blocks when keys are grouped by dataset.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from infra.local.jobs.errors import JobFailed
from lambdas.shared.aws import client

logger = logging.getLogger(__name__)

FULLY_REPLICATED = "FullyReplicated"
SHARDED_BY_S3_KEY = "ShardedByS3Key"


@dataclass(frozen=True)
class S3Object:
    """One object to download and where it lands, relative to the input's local directory."""

    bucket: str
    key: str
    relative_path: str


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise JobFailed(f"ClientError: {uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise JobFailed(f"ClientError: {uri!r} names no bucket")
    return bucket, key


def _s3() -> Any:
    return client("s3")


def _keys_under(bucket: str, prefix: str) -> list[str]:
    try:
        pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
    except ClientError as exc:
        raise JobFailed(f"ClientError: cannot list s3://{bucket}/{prefix}: {exc}") from exc


def prefix_objects(uri: str) -> list[S3Object]:
    """The objects an S3Prefix input names (see the module docstring), sorted by key."""
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        keys = _keys_under(bucket, prefix)
        if prefix in keys:
            return [S3Object(bucket, prefix, PurePosixPath(prefix).name)]
        prefix += "/"
    return [
        S3Object(bucket, key, key[len(prefix):])
        for key in _keys_under(bucket, prefix)
        if not key.endswith("/")
    ]


def manifest_objects(uri: str) -> list[S3Object]:
    """The objects a ManifestFile input lists, sorted by key."""
    bucket, key = parse_s3_uri(uri)
    try:
        body = _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        entries = json.loads(body)
        base_bucket, base_prefix = parse_s3_uri(entries[0]["prefix"])
        relatives = [str(entry) for entry in entries[1:]]
    except ClientError as exc:
        raise JobFailed(f"ClientError: cannot read manifest {uri}: {exc}") from exc
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise JobFailed(f'ClientError: manifest {uri} is not [{{"prefix": "s3://..."}}, "key", ...]: {exc}') from exc
    objects = [S3Object(base_bucket, base_prefix + rel, rel) for rel in relatives]
    return sorted(objects, key=lambda obj: obj.key)


def shard(objects: list[S3Object], distribution: str, index: int, count: int) -> list[S3Object]:
    """The objects instance `index` (0-based) of `count` receives."""
    if distribution == FULLY_REPLICATED:
        return list(objects)
    if distribution == SHARDED_BY_S3_KEY:
        return objects[index::count]
    raise JobFailed(f"ClientError: S3DataDistributionType {distribution!r} is not FullyReplicated or ShardedByS3Key")


def input_objects(uri: str, data_type: str) -> list[S3Object]:
    """Every object an input names; an input naming none fails the job as it does on SageMaker."""
    if data_type == "S3Prefix":
        objects = prefix_objects(uri)
    elif data_type == "ManifestFile":
        objects = manifest_objects(uri)
    else:
        raise JobFailed(f"ClientError: S3DataType {data_type!r} is not supported locally (S3Prefix, ManifestFile)")
    if not objects:
        raise JobFailed(f"ClientError: No S3 objects found under S3 URL {uri!r}")
    return objects


def download_objects(objects: list[S3Object], local_dir: Path) -> None:
    local_dir.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        target = _inside(local_dir, obj)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _s3().download_file(obj.bucket, obj.key, str(target))
        except ClientError as exc:
            raise JobFailed(f"ClientError: cannot download s3://{obj.bucket}/{obj.key}: {exc}") from exc


def _inside(local_dir: Path, obj: S3Object) -> Path:
    """Where an object lands; a key with `..` segments (S3 allows them) must not write outside the input."""
    target = (local_dir / obj.relative_path).resolve()
    if not target.is_relative_to(local_dir.resolve()):
        raise JobFailed(f"ClientError: s3://{obj.bucket}/{obj.key} would land outside {local_dir}")
    return target


def download_file(uri: str, target: Path) -> None:
    bucket, key = parse_s3_uri(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _s3().download_file(bucket, key, str(target))
    except ClientError as exc:
        raise JobFailed(f"ClientError: cannot download {uri}: {exc}") from exc


def join_uri(uri: str, relative: str) -> str:
    return f"{uri.rstrip('/')}/{relative}"


def upload_file(source: Path, uri: str) -> None:
    bucket, key = parse_s3_uri(uri)
    try:
        _s3().upload_file(str(source), bucket, key)
    except ClientError as exc:
        raise JobFailed(f"ClientError: cannot upload to {uri}: {exc}") from exc


def upload_tree(local_dir: Path, uri: str) -> int:
    """Upload every file under `local_dir` to `uri/<relative path>`; returns how many."""
    files = sorted(path for path in local_dir.rglob("*") if path.is_file()) if local_dir.is_dir() else []
    for path in files:
        upload_file(path, join_uri(uri, path.relative_to(local_dir).as_posix()))
    return len(files)
