"""Provisioning against a real moto server: the resources exist, wired as the router expects, twice over."""
from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest

from infra.local import provision
from infra.local.provision import Clients
from lambdas.shared import config


@pytest.fixture
def clients(aws_endpoint: str) -> Clients:
    env = {
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAMAY_BUCKET": config.LOCAL_BUCKET,
    }
    return Clients(env)


def test_provision_creates_every_moto_resource(clients: Clients) -> None:
    done = provision.provision(clients, provision.MOTO_STEPS)

    assert len(done) == len(provision.MOTO_STEPS)
    s3 = clients("s3")
    assert s3.get_bucket_versioning(Bucket=config.LOCAL_BUCKET)["Status"] == "Enabled"
    stream = clients("kinesis").describe_stream_summary(StreamName=config.STREAM_NAME)["StreamDescriptionSummary"]
    assert stream["OpenShardCount"] == provision.STREAM_SHARDS
    rule = clients("events").describe_rule(Name=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME)
    assert json.loads(rule["EventPattern"]) == provision.INGEST_EVENT_PATTERN
    targets = clients("events").list_targets_by_rule(Rule=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME)
    assert [t["Arn"] for t in targets["Targets"]] == [provision.queue_arn(provision.TRIGGER_QUEUE)]
    table = clients("dynamodb").describe_table(TableName=config.PREDICTIONS_TABLE)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["recording_id", "model_version"]
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == [provision.PREDICTIONS_GSI]
    ttl = clients("dynamodb").describe_time_to_live(TableName=config.IDEMPOTENCY_TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiration"
    state = clients("dynamodb").describe_table(TableName=config.INGEST_STATE_TABLE)["Table"]
    assert state["KeySchema"] == [{"AttributeName": "dataset", "KeyType": "HASH"}]
    role = clients("iam").get_role(RoleName=config.SAGEMAKER_ROLE_NAME)["Role"]
    assert role["Arn"] == provision.ROLE_ARN
    notification = s3.get_bucket_notification_configuration(Bucket=config.LOCAL_BUCKET)["QueueConfigurations"]
    assert notification[0]["QueueArn"] == provision.queue_arn(provision.INFERENCE_QUEUE)


def test_provision_twice_is_idempotent(clients: Clients) -> None:
    provision.provision(clients, provision.MOTO_STEPS)
    clients("s3").put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/a.wav", Body=b"RIFF")

    provision.provision(clients, provision.MOTO_STEPS)

    assert clients("s3").get_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/a.wav")["Body"].read() == b"RIFF"
    rules = clients("events").list_rules(EventBusName=config.EVENT_BUS_NAME)["Rules"]
    assert [r["Name"] for r in rules] == [config.INGEST_RULE_NAME]


def test_rule_delivers_pipe_events_to_the_trigger_queue_and_ignores_others(clients: Clients) -> None:
    provision.provision(clients, provision.MOTO_STEPS)
    events = clients("events")

    events.put_events(
        Entries=[
            {"EventBusName": config.EVENT_BUS_NAME, "Source": config.PIPE_EVENT_SOURCE,
             "DetailType": config.PIPE_DETAIL_TYPE, "Detail": json.dumps({"data": "e30="})},
            {"EventBusName": config.EVENT_BUS_NAME, "Source": "someone.else",
             "DetailType": config.PIPE_DETAIL_TYPE, "Detail": json.dumps({"data": "e30="})},
        ]
    )

    url = provision.queue_url(clients, provision.TRIGGER_QUEUE)
    messages = clients("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["source"] for m in messages] == [config.PIPE_EVENT_SOURCE]


def test_upload_under_inference_incoming_notifies_the_inference_queue_only_for_wavs(clients: Clients) -> None:
    provision.provision(clients, provision.MOTO_STEPS)
    s3 = clients("s3")
    url = provision.queue_url(clients, provision.INFERENCE_QUEUE)
    clients("sqs").purge_queue(QueueUrl=url)  # the s3:TestEvent sent when the notification was configured

    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="inference/incoming/x.wav", Body=b"RIFF")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="inference/incoming/x.txt", Body=b"no")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/y.wav", Body=b"RIFF")

    messages = clients("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    keys = [unquote_plus(r["s3"]["object"]["key"]) for m in messages for r in json.loads(m["Body"])["Records"]]
    assert keys == ["inference/incoming/x.wav"]
