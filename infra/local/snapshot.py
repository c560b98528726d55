"""Persistence of moto's data across `local down` / `local up`: a snapshot under `<state-dir>/moto/`.

Why a snapshot and not moto's recorder: the recorder replays every request on start, so SQS
receives and deletes (whose receipt handles are random) fail on replay, PutEvents and S3 uploads
re-deliver their events, consumed messages come back, and the replay grows (and slows) forever.
A snapshot holds the data itself, read through the public APIs:

    moto/s3/<bucket>.json          versioning + the latest version of each object (key, metadata)
    moto/blobs/<etag>-<size>       object bodies, content-addressed: a later `down` only fetches new ones
    moto/dynamodb/<table>.json     key schema, indexes, TTL and every item (typed, bytes as base64)
    moto/sqs/<queue>.json          attributes and the messages still waiting (DLQs included)
    moto/kinesis/<stream>.json     shard count and the records the router has not delivered yet

`save` runs while moto still answers (after the router and the SageMaker service stopped);
`restore` runs on a fresh moto after the stack is created (CloudFormation would fail on a bucket or
table that already exists; restore fills the stack's resources and creates only what is missing)
and before the local wiring, so restored objects under the notification prefix do not fire again.
Not kept: older object versions, other services (IAM, EventBridge, Lambda and the bucket
notification come back from the template and provisioning). If moto dies without a `down`, the
last snapshot is used.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from infra.local.provision import Clients

logger = logging.getLogger(__name__)

_READ_ONLY_QUEUE_ATTRIBUTES = {
    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn", "SqsManagedSseEnabled",
}
PARTS = ("s3", "dynamodb", "sqs", "kinesis")
_TABLE_FIELDS = ("KeySchema", "AttributeDefinitions")
_INDEX_FIELDS = ("IndexName", "KeySchema", "Projection")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=_encode_bytes))
    tmp.replace(path)


def _encode_bytes(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot snapshot a {type(value).__name__}")


def _decode_bytes(obj: dict) -> Any:
    return base64.b64decode(obj["__bytes__"]) if set(obj) == {"__bytes__"} else obj


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(), object_hook=_decode_bytes)


def _replace_dir(target: Path, build: Path) -> None:
    """Swap a freshly written folder in, so a snapshot is never half old, half new."""
    if target.exists():
        shutil.rmtree(target)
    build.rename(target)


# --- S3 -------------------------------------------------------------------------------------------

def _blob_name(etag: str, size: int) -> str:
    return re.sub(r"[^0-9A-Za-z-]", "", etag) + f"-{size}"


def _save_s3(clients: Clients, folder: Path, blobs: Path) -> int:
    s3, count = clients("s3"), 0
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status")
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for summary in page.get("Contents", []):
                blob = _blob_name(summary["ETag"], summary["Size"])
                head = s3.head_object(Bucket=name, Key=summary["Key"])
                if not (blobs / blob).is_file():
                    body = s3.get_object(Bucket=name, Key=summary["Key"])["Body"].read()
                    (blobs / f"{blob}.tmp").write_bytes(body)
                    (blobs / f"{blob}.tmp").replace(blobs / blob)
                objects.append({"key": summary["Key"], "blob": blob, "content_type": head.get("ContentType"),
                                "metadata": head.get("Metadata", {})})
        _write_json(folder / f"{name}.json", {"bucket": name, "versioning": versioning, "objects": objects})
        count += len(objects)
    return count


def _restore_s3(clients: Clients, folder: Path, blobs: Path) -> int:
    s3, count = clients("s3"), 0
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path)
        try:
            s3.create_bucket(Bucket=data["bucket"])
        except ClientError as err:
            if err.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
        if data["versioning"]:
            s3.put_bucket_versioning(Bucket=data["bucket"], VersioningConfiguration={"Status": data["versioning"]})
        for obj in data["objects"]:
            extra = {"ContentType": obj["content_type"]} if obj["content_type"] else {}
            s3.put_object(Bucket=data["bucket"], Key=obj["key"], Body=(blobs / obj["blob"]).read_bytes(),
                          Metadata=obj["metadata"], **extra)
            count += 1
    return count


# --- DynamoDB -------------------------------------------------------------------------------------

def _save_dynamodb(clients: Clients, folder: Path) -> int:
    dynamodb, count = clients("dynamodb"), 0
    for page in dynamodb.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            table = dynamodb.describe_table(TableName=name)["Table"]
            spec = {k: table[k] for k in _TABLE_FIELDS}
            for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if table.get(kind):
                    spec[kind] = [{k: index[k] for k in _INDEX_FIELDS} for index in table[kind]]
            ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=name) for item in page["Items"]]
            _write_json(folder / f"{name}.json", {"table": name, "spec": spec, "items": items,
                                                  "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None})
            count += len(items)
    return count


def _restore_dynamodb(clients: Clients, folder: Path) -> int:
    dynamodb, count = clients("dynamodb"), 0
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path)
        try:
            dynamodb.create_table(TableName=data["table"], BillingMode="PAY_PER_REQUEST", **data["spec"])
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException":
                raise
        if data["ttl"]:
            dynamodb.update_time_to_live(TableName=data["table"],
                                         TimeToLiveSpecification={"Enabled": True, "AttributeName": data["ttl"]})
        items = data["items"]
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
            while requests:
                response = dynamodb.batch_write_item(RequestItems={data["table"]: requests})
                requests = response.get("UnprocessedItems", {}).get(data["table"], [])
        count += len(items)
    return count


# --- SQS ------------------------------------------------------------------------------------------

def _drain(sqs: Any, url: str, settle_seconds: float) -> Iterator[dict[str, Any]]:
    """Every waiting message, including ones that turn visible again within `settle_seconds` (retries)."""
    deadline = time.monotonic() + settle_seconds
    received = 0
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                       MessageAttributeNames=["All"]).get("Messages", [])
        received += len(messages)
        yield from messages
        if messages:
            continue
        hidden = int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])[
            "Attributes"]["ApproximateNumberOfMessagesNotVisible"]) - received
        if hidden <= 0 or time.monotonic() > deadline:
            if hidden > 0:
                logger.warning("snapshot: %d message(s) still in flight in %s are not kept", hidden, url)
            return
        time.sleep(0.5)


def _save_sqs(clients: Clients, folder: Path, settle_seconds: float) -> int:
    sqs, count = clients("sqs"), 0
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        kept = {k: v for k, v in attributes.items() if k not in _READ_ONLY_QUEUE_ATTRIBUTES}
        # Message ids are unique; a message seen twice (visibility expired meanwhile) is kept once.
        messages = {m["MessageId"]: {"body": m["Body"], "attributes": m.get("MessageAttributes", {})}
                    for m in _drain(sqs, url, settle_seconds)}
        name = url.rstrip("/").rsplit("/", 1)[-1]
        _write_json(folder / f"{name}.json", {"queue": name, "attributes": kept, "messages": list(messages.values())})
        count += len(messages)
    return count


def _restore_sqs(clients: Clients, folder: Path) -> int:
    sqs, count = clients("sqs"), 0
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path)
        try:
            url = sqs.create_queue(QueueName=data["queue"], Attributes=data["attributes"])["QueueUrl"]
        except ClientError as err:  # the stack made it with its own attributes (a new KMS key id): keep those
            if err.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = sqs.get_queue_url(QueueName=data["queue"])["QueueUrl"]
        for message in data["messages"]:
            extra = {"MessageAttributes": message["attributes"]} if message["attributes"] else {}
            if data["queue"].endswith(".fifo"):
                extra["MessageGroupId"] = "restored"
            sqs.send_message(QueueUrl=url, MessageBody=message["body"], **extra)
            count += 1
    return count


# --- Kinesis --------------------------------------------------------------------------------------

def _undelivered(kinesis: Any, stream: str, shard_id: str, after: str | None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
                              if after else {"ShardIteratorType": "TRIM_HORIZON"})
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **kwargs)["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        if not response["Records"]:
            break
        records.extend({"data": r["Data"], "partition_key": r["PartitionKey"]} for r in response["Records"])
        iterator = response.get("NextShardIterator")
    return records


def _save_kinesis(clients: Clients, folder: Path, delivered: Mapping[str, Mapping[str, Any]]) -> int:
    kinesis, count = clients("kinesis"), 0
    for name in kinesis.list_streams().get("StreamNames", []):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        checkpoint = delivered.get(name, {})
        # Checkpoints of an earlier incarnation of the stream say nothing about this one's records.
        done = checkpoint.get("shards", {}) if checkpoint.get("created") == str(summary["StreamCreationTimestamp"]) else {}
        shards = kinesis.list_shards(StreamName=name)["Shards"]
        records = [r for shard in shards for r in _undelivered(kinesis, name, shard["ShardId"], done.get(shard["ShardId"]))]
        _write_json(folder / f"{name}.json", {"stream": name, "shards": len(shards), "records": records})
        count += len(records)
    return count


def _restore_kinesis(clients: Clients, folder: Path) -> int:
    kinesis, count = clients("kinesis"), 0
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path)
        try:
            kinesis.create_stream(StreamName=data["stream"], ShardCount=data["shards"])
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException":
                raise
        kinesis.get_waiter("stream_exists").wait(StreamName=data["stream"], WaiterConfig={"Delay": 0.2})
        for record in data["records"]:
            kinesis.put_record(StreamName=data["stream"], Data=record["data"], PartitionKey=record["partition_key"])
            count += 1
    return count


# --- the whole snapshot ---------------------------------------------------------------------------

def save(clients: Clients, directory: Path, *, kinesis_delivered: Mapping[str, Mapping[str, Any]] | None = None,
         settle_seconds: float = 10.0) -> dict[str, int]:
    """Write moto's data under `directory` (replacing the previous snapshot); returns counts per service.

    `kinesis_delivered` is the router's checkpoint data, {stream: {"created": ..., "shards": {shard: seq}}}.
    """
    blobs = directory / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    build = directory / ".building"
    if build.exists():
        shutil.rmtree(build)
    counts = {
        "s3_objects": _save_s3(clients, build / "s3", blobs),
        "dynamodb_items": _save_dynamodb(clients, build / "dynamodb"),
        "sqs_messages": _save_sqs(clients, build / "sqs", settle_seconds),
        "kinesis_records": _save_kinesis(clients, build / "kinesis", kinesis_delivered or {}),
    }
    for part in PARTS:
        (build / part).mkdir(parents=True, exist_ok=True)
        _replace_dir(directory / part, build / part)
    shutil.rmtree(build)
    _collect_blobs(directory / "s3", blobs)
    logger.info("snapshot saved: %s", counts)
    return counts


def _collect_blobs(folder: Path, blobs: Path) -> None:
    """Delete bodies no object refers to any more (overwritten or deleted objects)."""
    used = {obj["blob"] for path in folder.glob("*.json") for obj in _read_json(path)["objects"]}
    for blob in blobs.iterdir():
        if blob.name not in used:
            blob.unlink()


def restore(clients: Clients, directory: Path) -> dict[str, int]:
    """Load a snapshot written by `save` into a fresh moto; a missing snapshot restores nothing."""
    counts = {
        "s3_objects": _restore_s3(clients, directory / "s3", directory / "blobs"),
        "dynamodb_items": _restore_dynamodb(clients, directory / "dynamodb"),
        "sqs_messages": _restore_sqs(clients, directory / "sqs"),
        "kinesis_records": _restore_kinesis(clients, directory / "kinesis"),
    }
    logger.info("snapshot restored: %s", counts)
    return counts
