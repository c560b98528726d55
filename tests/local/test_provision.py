"""Provisioning against a real moto server: the template's stack plus the local wiring, twice over."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests

from infra.local import provision, snapshot
from infra.local.provision import Clients
from lambdas.shared import config

FUNCTIONS = (config.TRIGGER_FUNCTION, config.INFERENCE_FUNCTION, config.DEPLOY_FUNCTION, config.PREDICT_API_FUNCTION)


@pytest.fixture
def clients(moto_clients: Clients) -> Clients:
    return moto_clients


@pytest.fixture
def provisioned(clients: Clients) -> Clients:
    provision.provision(clients, provision.MOTO_STEPS)
    return clients


def test_stack_is_created_from_the_template_with_the_local_bucket(provisioned: Clients) -> None:
    stack = provisioned("cloudformation").describe_stacks(StackName=provision.STACK_NAME)["Stacks"][0]

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters["DataBucketName"] == config.LOCAL_BUCKET
    deployed = provisioned("cloudformation").get_template(StackName=provision.STACK_NAME)["TemplateBody"]
    assert deployed == provision.TEMPLATE.read_text()
    assert provision.stack_resources(provisioned)["DataBucket"] == config.LOCAL_BUCKET


def test_stream_tables_and_role_come_from_the_stack(provisioned: Clients) -> None:
    stream = provisioned("kinesis").describe_stream_summary(StreamName=config.STREAM_NAME)["StreamDescriptionSummary"]
    assert stream["StreamStatus"] == "ACTIVE" and stream["OpenShardCount"] >= 1
    assert stream["RetentionPeriodHours"] == 168  # the template's value, not moto's default of 24
    dynamodb = provisioned("dynamodb")
    table = dynamodb.describe_table(TableName=config.PREDICTIONS_TABLE)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["recording_id", "model_version"]
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == [provision.PREDICTIONS_GSI]
    assert [k["AttributeName"] for k in table["GlobalSecondaryIndexes"][0]["KeySchema"]] == ["patient_id", "created_at"]
    state = dynamodb.describe_table(TableName=config.INGEST_STATE_TABLE)["Table"]
    assert state["KeySchema"] == [{"AttributeName": "dataset", "KeyType": "HASH"}]
    assert provisioned("iam").get_role(RoleName=config.SAGEMAKER_ROLE_NAME)["Role"]["Arn"] == provision.ROLE_ARN


def test_settings_moto_cloudformation_skips_are_applied_from_the_template(provisioned: Clients) -> None:
    s3, dynamodb = provisioned("s3"), provisioned("dynamodb")

    assert s3.get_bucket_versioning(Bucket=config.LOCAL_BUCKET)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=config.LOCAL_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block[flag] for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                        "RestrictPublicBuckets"))
    ttl = dynamodb.describe_time_to_live(TableName=config.IDEMPOTENCY_TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")
    for table in (config.PREDICTIONS_TABLE, config.IDEMPOTENCY_TABLE, config.INGEST_STATE_TABLE):
        backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_functions_exist_in_moto_as_the_template_defines_them(provisioned: Clients) -> None:
    lambda_client = provisioned("lambda")

    for name in FUNCTIONS:
        configuration = lambda_client.get_function(FunctionName=name)["Configuration"]
        folder = name.removeprefix("samay-").replace("-", "_")
        assert configuration["Handler"] == f"lambdas/{folder}/app.lambda_handler"
    inference = lambda_client.get_function(FunctionName=config.INFERENCE_FUNCTION)["Configuration"]
    variables = inference["Environment"]["Variables"]
    assert variables["SAMAY_BUCKET"] == config.LOCAL_BUCKET
    assert provisioned("s3").list_objects_v2(Bucket=provision.CODE_BUCKET)["KeyCount"] == 0  # Lambda kept its copy


def test_lambda_code_zip_holds_the_handlers_and_is_reproducible() -> None:
    first = provision.lambda_code_zip()

    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert {"lambdas/trigger/app.py", "lambdas/inference/app.py", "lambdas/shared/config.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]
    assert provision.lambda_code_zip() == first


def test_rule_keeps_the_template_pattern_and_targets_only_the_trigger_queue(provisioned: Clients) -> None:
    events = provisioned("events")

    rule = events.describe_rule(Name=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME)
    assert json.loads(rule["EventPattern"]) == provision.INGEST_EVENT_PATTERN
    targets = events.list_targets_by_rule(Rule=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME)["Targets"]
    assert [(t["Id"], t["Arn"]) for t in targets] == [
        (provision.TRIGGER_TARGET_ID, provision.queue_arn(provision.TRIGGER_QUEUE))]


def test_bucket_notifies_only_the_inference_queue(provisioned: Clients) -> None:
    notification = provisioned("s3").get_bucket_notification_configuration(Bucket=config.LOCAL_BUCKET)

    assert "LambdaFunctionConfigurations" not in notification
    assert [q["QueueArn"] for q in notification["QueueConfigurations"]] == [provision.queue_arn(provision.INFERENCE_QUEUE)]


def test_dead_letter_queues_are_the_templates(provisioned: Clients) -> None:
    stack = provision.stack_resources(provisioned)

    for logical, name in (("TriggerDeadLetterQueue", provision.TRIGGER_DLQ),
                          ("InferenceDeadLetterQueue", provision.INFERENCE_DLQ)):
        assert stack[logical].rsplit("/", 1)[-1] == name
        assert provision.queue_url(provisioned, name)


def test_model_package_group_is_created_in_the_local_sagemaker(clients: Clients, sagemaker: Any) -> None:
    local = Clients({**clients.env, "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.meta.endpoint_url})

    provision.provision(local, provision.SAGEMAKER_STEPS)
    provision.provision(local, provision.SAGEMAKER_STEPS)

    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == [config.MODEL_PACKAGE_GROUP]


def test_provision_twice_is_idempotent(provisioned: Clients) -> None:
    s3, sqs = provisioned("s3"), provisioned("sqs")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/a.wav", Body=b"RIFF")
    stack_id = provisioned("cloudformation").describe_stacks(StackName=provision.STACK_NAME)["Stacks"][0]["StackId"]
    sqs.purge_queue(QueueUrl=provision.queue_url(provisioned, provision.INFERENCE_QUEUE))

    assert provision.ensure_stack(provisioned) == "unchanged"
    provision.provision(provisioned, provision.MOTO_STEPS)

    stack = provisioned("cloudformation").describe_stacks(StackName=provision.STACK_NAME)["Stacks"][0]
    assert (stack["StackId"], stack["StackStatus"]) == (stack_id, "CREATE_COMPLETE")
    assert s3.get_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/a.wav")["Body"].read() == b"RIFF"
    rules = provisioned("events").list_rules(EventBusName=config.EVENT_BUS_NAME)["Rules"]
    assert [r["Name"] for r in rules if "ManagedBy" not in r] == [config.INGEST_RULE_NAME]
    url = provision.queue_url(provisioned, provision.INFERENCE_QUEUE)
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # no second s3:TestEvent


def test_changed_template_updates_the_stack_and_keeps_the_data(provisioned: Clients, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    provisioned("s3").put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/a.wav", Body=b"RIFF")
    changed = tmp_path / "template.yaml"
    changed.write_text(provision.TEMPLATE.read_text().replace("Description: >-\n", "Description: >-\n  (changed)\n", 1))
    monkeypatch.setattr(provision, "TEMPLATE", changed)

    assert provision.ensure_stack(provisioned) == "updated"

    stack = provisioned("cloudformation").describe_stacks(StackName=provision.STACK_NAME)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert provisioned("s3").get_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/a.wav")["Body"].read() == b"RIFF"
    assert provision.ensure_stack(provisioned) == "unchanged"


def test_restore_between_stack_and_wiring_keeps_data_without_clashing(provisioned: Clients, tmp_path: Path) -> None:
    # GIVEN data saved from a provisioned moto, which then forgets everything (as on down -> up)
    item = {"recording_id": {"S": "r1"}, "model_version": {"S": "1"}, "patient_id": {"S": "p1"}}
    provisioned("s3").put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/r1.wav", Body=b"RIFF")
    provisioned("dynamodb").put_item(TableName=config.PREDICTIONS_TABLE, Item=item)
    provisioned("sqs").send_message(QueueUrl=provision.queue_url(provisioned, provision.TRIGGER_DLQ), MessageBody="{}")
    snapshot.save(provisioned, tmp_path, settle_seconds=0)
    reset_moto(provisioned)

    # WHEN `up` creates the stack, restores, then wires (the queue's KMS key id differs from the saved one)
    provision.provision(provisioned, provision.STACK_STEPS)
    snapshot.restore(provisioned, tmp_path)
    provision.provision(provisioned, provision.LOCAL_STEPS)

    # THEN the stack is complete and the data is back
    stack = provisioned("cloudformation").describe_stacks(StackName=provision.STACK_NAME)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert provisioned("s3").get_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/r1.wav")["Body"].read() == b"RIFF"
    key = {name: item[name] for name in ("recording_id", "model_version")}
    got = provisioned("dynamodb").get_item(TableName=config.PREDICTIONS_TABLE, Key=key)
    assert got["Item"] == item
    messages = provisioned("sqs").receive_message(QueueUrl=provision.queue_url(provisioned, provision.TRIGGER_DLQ))
    assert [m["Body"] for m in messages["Messages"]] == ["{}"]


def test_stack_over_existing_data_fails_with_a_clear_error(clients: Clients) -> None:
    # Why `up` restores the snapshot after the stack: CloudFormation will not adopt an existing bucket.
    clients("s3").create_bucket(Bucket=config.LOCAL_BUCKET)

    with pytest.raises(provision.ProvisionError, match=r"creation of stack samay .*BucketAlreadyExists.*local down"):
        provision.ensure_stack(clients)


def test_rule_delivers_pipe_events_to_the_trigger_queue_and_ignores_others(provisioned: Clients) -> None:
    provisioned("events").put_events(
        Entries=[
            {"EventBusName": config.EVENT_BUS_NAME, "Source": config.PIPE_EVENT_SOURCE,
             "DetailType": config.PIPE_DETAIL_TYPE, "Detail": json.dumps({"data": "e30="})},
            {"EventBusName": config.EVENT_BUS_NAME, "Source": "someone.else",
             "DetailType": config.PIPE_DETAIL_TYPE, "Detail": json.dumps({"data": "e30="})},
        ]
    )

    url = provision.queue_url(provisioned, provision.TRIGGER_QUEUE)
    messages = provisioned("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["source"] for m in messages] == [config.PIPE_EVENT_SOURCE]


def test_upload_under_inference_incoming_notifies_the_inference_queue_only_for_wavs(provisioned: Clients) -> None:
    s3 = provisioned("s3")
    url = provision.queue_url(provisioned, provision.INFERENCE_QUEUE)
    provisioned("sqs").purge_queue(QueueUrl=url)  # the s3:TestEvent sent when the notification was configured

    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="inference/incoming/x.wav", Body=b"RIFF")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="inference/incoming/x.txt", Body=b"no")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/y.wav", Body=b"RIFF")

    messages = provisioned("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    keys = [unquote_plus(r["s3"]["object"]["key"]) for m in messages for r in json.loads(m["Body"])["Records"]]
    assert keys == ["inference/incoming/x.wav"]


def reset_moto(clients: Clients) -> None:
    requests.post(f"{clients.env['AWS_ENDPOINT_URL']}/moto-api/reset", timeout=10).raise_for_status()
