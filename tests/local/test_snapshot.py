"""moto's data survives save -> reset -> restore: objects, items, waiting messages, undelivered records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from infra.local import provision, snapshot
from infra.local.provision import Clients
from lambdas.shared import config


@pytest.fixture
def clients(aws_endpoint: str) -> Clients:
    clients = Clients({
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAMAY_BUCKET": config.LOCAL_BUCKET,
    })
    provision.provision(clients, provision.MOTO_STEPS)
    clients("sqs").purge_queue(QueueUrl=provision.queue_url(clients, provision.INFERENCE_QUEUE))
    return clients


def reset_moto(clients: Clients) -> None:
    requests.post(f"{clients.env['AWS_ENDPOINT_URL']}/moto-api/reset", timeout=10).raise_for_status()


def test_snapshot_round_trip_keeps_data(clients: Clients, tmp_path: Path) -> None:
    # GIVEN data in every service the snapshot keeps
    s3, dynamodb, sqs, kinesis = clients("s3"), clients("dynamodb"), clients("sqs"), clients("kinesis")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/d/r1.wav", Body=b"RIFF1", ContentType="audio/wav",
                  Metadata={"dataset": "d"})
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="models/m.tar.gz", Body=b"\x1f\x8b")
    item = {"recording_id": {"S": "r1"}, "model_version": {"S": "3"}, "blob": {"B": b"\x00\xff"},
            "probabilities": {"M": {"Asthma": {"N": "0.25"}}}}
    dynamodb.put_item(TableName=config.PREDICTIONS_TABLE, Item=item)
    sqs.send_message(QueueUrl=provision.queue_url(clients, provision.TRIGGER_DLQ), MessageBody='{"dead": 1}')
    first = kinesis.put_record(StreamName=config.STREAM_NAME, Data=b'{"n": 1}', PartitionKey="p")
    kinesis.put_record(StreamName=config.STREAM_NAME, Data=b'{"n": 2}', PartitionKey="p")
    shard = first["ShardId"]

    # WHEN it is saved (the router delivered record 1), moto forgets everything, and it is restored
    created = str(kinesis.describe_stream_summary(StreamName=config.STREAM_NAME)["StreamDescriptionSummary"][
        "StreamCreationTimestamp"])
    delivered = {config.STREAM_NAME: {"created": created, "shards": {shard: first["SequenceNumber"]}}}
    counts = snapshot.save(clients, tmp_path, kinesis_delivered=delivered, settle_seconds=0)
    reset_moto(clients)
    restored = snapshot.restore(clients, tmp_path)

    # THEN the same data is back, and only the undelivered record is in the stream again
    assert counts == restored == {"s3_objects": 2, "dynamodb_items": 1, "sqs_messages": 1, "kinesis_records": 1}
    obj = s3.get_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/d/r1.wav")
    assert obj["Body"].read() == b"RIFF1" and obj["ContentType"] == "audio/wav" and obj["Metadata"] == {"dataset": "d"}
    assert s3.get_bucket_versioning(Bucket=config.LOCAL_BUCKET)["Status"] == "Enabled"
    got = dynamodb.get_item(TableName=config.PREDICTIONS_TABLE, Key={"recording_id": {"S": "r1"}, "model_version": {"S": "3"}})
    assert got["Item"] == item
    table = dynamodb.describe_table(TableName=config.PREDICTIONS_TABLE)["Table"]
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == [provision.PREDICTIONS_GSI]
    messages = sqs.receive_message(QueueUrl=provision.queue_url(clients, provision.TRIGGER_DLQ))["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [{"dead": 1}]
    iterator = kinesis.get_shard_iterator(StreamName=config.STREAM_NAME, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [b'{"n": 2}']


def test_restore_does_not_fire_the_inference_notification(clients: Clients, tmp_path: Path) -> None:
    clients("s3").put_object(Bucket=config.LOCAL_BUCKET, Key="inference/incoming/x.wav", Body=b"RIFF")
    url = provision.queue_url(clients, provision.INFERENCE_QUEUE)
    for message in clients("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
        clients("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    snapshot.save(clients, tmp_path, settle_seconds=0)
    reset_moto(clients)

    provision.provision(clients, provision.STACK_STEPS)  # as `local up` does: stack, snapshot, local wiring
    snapshot.restore(clients, tmp_path)
    provision.provision(clients, provision.LOCAL_STEPS)

    messages = clients("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"]).get("Event") for m in messages] == ["s3:TestEvent"]


def test_second_save_fetches_only_new_bodies_and_drops_deleted_ones(clients: Clients, tmp_path: Path) -> None:
    s3 = clients("s3")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="a", Body=b"first")
    snapshot.save(clients, tmp_path, settle_seconds=0)
    s3.delete_object(Bucket=config.LOCAL_BUCKET, Key="a")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="b", Body=b"second")

    snapshot.save(clients, tmp_path, settle_seconds=0)

    assert sorted(p.read_bytes() for p in (tmp_path / "blobs").iterdir()) == [b"second"]


def test_checkpoint_of_an_earlier_stream_does_not_hide_records(clients: Clients, tmp_path: Path) -> None:
    first = clients("kinesis").put_record(StreamName=config.STREAM_NAME, Data=b"1", PartitionKey="p")
    clients("kinesis").put_record(StreamName=config.STREAM_NAME, Data=b"2", PartitionKey="p")
    stale = {config.STREAM_NAME: {"created": "2000-01-01 00:00:00+00:00", "shards": {first["ShardId"]: first["SequenceNumber"]}}}

    counts = snapshot.save(clients, tmp_path, kinesis_delivered=stale, settle_seconds=0)

    assert counts["kinesis_records"] == 2
