"""`samay local up|status|env|down` end to end: separate processes, real protocols, the router's paths.

The module starts its own cloud whose router runs this folder's test handlers (cloud_handlers.py)
in place of the project's functions and retries without backoff; the shared `local_cloud` fixture
(real functions, pipeline upserted) is checked by the last test.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import cloud as cloud_module
from infra.local import provision, router
from infra.local.state import Component, descendants, pid_alive
from lambdas.shared import config
from tests.fixtures.cloud import LocalCloud, parse_exports, running_local_cloud, samay_command, wait_until

pytestmark = pytest.mark.cloud

HANDLERS = {
    config.TRIGGER_FUNCTION: "tests.local.cloud_handlers:trigger",
    config.INFERENCE_FUNCTION: "tests.local.cloud_handlers:inference",
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    extra_env = {router.FUNCTIONS_ENV: json.dumps(HANDLERS), router.BACKOFF_ENV: "0"}
    with running_local_cloud(tmp_path_factory.mktemp("cloud"), extra_env=extra_env, pipeline=False) as running:
        yield running


def handler_events(cloud: LocalCloud, function: str) -> list[dict]:
    s3 = cloud.client("s3")
    listing = s3.list_objects_v2(Bucket=config.LOCAL_BUCKET, Prefix=f"test-events/{function}/")
    return [json.loads(s3.get_object(Bucket=config.LOCAL_BUCKET, Key=o["Key"])["Body"].read())
            for o in listing.get("Contents", [])]


def dead_letters(cloud: LocalCloud, queue: str) -> list[dict]:
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def record_data(event: dict) -> dict:
    return json.loads(base64.b64decode(event["detail"]["data"]))


def _exports(cloud: LocalCloud) -> dict[str, str]:
    return parse_exports(cloud.cli("env").stdout)


def put_record(cloud: LocalCloud, payload: dict) -> None:
    cloud.client("kinesis").put_record(StreamName=config.STREAM_NAME, Data=json.dumps(payload).encode(),
                                       PartitionKey=payload["tag"])


def test_up_starts_three_processes_that_status_shows_alive(cloud: LocalCloud) -> None:
    pids = cloud.pids()
    assert set(pids) == {"moto", "sagemaker", "router"}
    assert len(cloud.alive_pids(cloud.record())) == 3

    result = cloud.cli("status")

    for name, pid in pids.items():
        assert name in result.stdout and str(pid) in result.stdout
    assert "S3 objects" in result.stdout and "Model packages" in result.stdout


def test_up_again_says_so_and_keeps_the_processes(cloud: LocalCloud) -> None:
    before = cloud.pids()

    result = cloud.cli("up", "--no-pipeline")

    assert "already running" in result.stdout
    assert cloud.pids() == before


def test_env_points_clients_at_the_cloud(cloud: LocalCloud) -> None:
    record = cloud.record()["components"]
    assert cloud.env["AWS_ENDPOINT_URL"] == record["moto"]["url"]
    assert cloud.env["AWS_ENDPOINT_URL_SAGEMAKER"] == record["sagemaker"]["url"]
    assert cloud.env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == record["sagemaker"]["url"]
    assert cloud.env["AWS_ACCESS_KEY_ID"] == cloud.env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert cloud.env["AWS_DEFAULT_REGION"] == cloud.env["AWS_REGION"] == "us-east-1"
    assert cloud.env["SAMAY_BUCKET"] == config.LOCAL_BUCKET


def test_up_provisions_the_stacks_resources(cloud: LocalCloud) -> None:
    assert cloud.client("s3").get_bucket_versioning(Bucket=config.LOCAL_BUCKET)["Status"] == "Enabled"
    assert config.STREAM_NAME in cloud.client("kinesis").list_streams()["StreamNames"]
    rule = cloud.client("events").describe_rule(Name=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME)
    assert json.loads(rule["EventPattern"]) == provision.INGEST_EVENT_PATTERN
    tables = cloud.client("dynamodb").list_tables()["TableNames"]
    assert {config.PREDICTIONS_TABLE, config.IDEMPOTENCY_TABLE, config.INGEST_STATE_TABLE} <= set(tables)
    predictions = cloud.client("dynamodb").describe_table(TableName=config.PREDICTIONS_TABLE)["Table"]
    assert [g["IndexName"] for g in predictions["GlobalSecondaryIndexes"]] == [provision.PREDICTIONS_GSI]
    group = cloud.client("sagemaker").describe_model_package_group(ModelPackageGroupName=config.MODEL_PACKAGE_GROUP)
    assert group["ModelPackageGroupName"] == config.MODEL_PACKAGE_GROUP
    assert cloud.client("iam").get_role(RoleName=config.SAGEMAKER_ROLE_NAME)["Role"]["Arn"] == provision.ROLE_ARN


def test_aws_cli_lists_the_bucket(cloud: LocalCloud) -> None:
    cloud.client("s3").put_object(Bucket=config.LOCAL_BUCKET, Key="cli/probe.txt", Body=b"hi")
    aws = Path(sys.executable).parent / "aws"

    result = subprocess.run([str(aws), "s3", "ls", f"s3://{config.LOCAL_BUCKET}/cli/"], capture_output=True, text=True,
                            env={**cloud.process_env, **cloud.env}, timeout=120, check=True)

    assert "probe.txt" in result.stdout


def test_kinesis_record_reaches_the_trigger_through_pipe_bus_rule_and_queue(cloud: LocalCloud) -> None:
    tag = uuid.uuid4().hex
    put_record(cloud, {"tag": tag})

    events = wait_until(lambda: [e for e in handler_events(cloud, config.TRIGGER_FUNCTION) if record_data(e)["tag"] == tag],
                        "the trigger handler's event")

    (event,) = events
    assert event["source"] == config.PIPE_EVENT_SOURCE and event["detail-type"] == config.PIPE_DETAIL_TYPE
    assert event["detail"]["partitionKey"] == tag


def test_upload_under_inference_incoming_reaches_inference_as_an_s3_event(cloud: LocalCloud) -> None:
    key = f"inference/incoming/{uuid.uuid4().hex}.wav"
    cloud.client("s3").put_object(Bucket=config.LOCAL_BUCKET, Key=key, Body=b"RIFF")

    events = wait_until(lambda: [e for e in handler_events(cloud, config.INFERENCE_FUNCTION)
                                 if e["Records"][0]["s3"]["object"]["key"] == key], "the inference handler's event")

    record = events[0]["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == config.LOCAL_BUCKET and "versionId" in record["s3"]["object"]


def test_failing_trigger_is_retried_then_dead_lettered(cloud: LocalCloud) -> None:
    tag = uuid.uuid4().hex
    put_record(cloud, {"tag": tag, "fail": True})

    letters = wait_until(lambda: [d for d in dead_letters(cloud, provision.TRIGGER_DLQ)
                                  if record_data(d["requestPayload"])["tag"] == tag], "the trigger's dead letter")

    assert letters[0]["requestContext"]["condition"] == "RetriesExhausted"
    assert letters[0]["responsePayload"]["errorType"] == "AskedToFail"
    attempts = [e for e in handler_events(cloud, config.TRIGGER_FUNCTION) if record_data(e)["tag"] == tag]
    assert len(attempts) == 3


def test_failing_inference_is_retried_then_dead_lettered(cloud: LocalCloud) -> None:
    key = f"inference/incoming/fail-{uuid.uuid4().hex}.wav"
    cloud.client("s3").put_object(Bucket=config.LOCAL_BUCKET, Key=key, Body=b"RIFF")

    letters = wait_until(lambda: [d for d in dead_letters(cloud, provision.INFERENCE_DLQ)
                                  if d["requestPayload"]["Records"][0]["s3"]["object"]["key"] == key],
                         "the inference dead letter")

    assert letters[0]["requestContext"]["approximateInvokeCount"] == 3


def test_down_stops_every_process_and_up_brings_the_data_back(cloud: LocalCloud) -> None:
    s3, dynamodb = cloud.client("s3"), cloud.client("dynamodb")
    s3.put_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/keep/r1.wav", Body=b"RIFF-keep")
    item = {"dataset": {"S": "keep"}, "count": {"N": "3"}}
    dynamodb.put_item(TableName=config.INGEST_STATE_TABLE, Item=item)
    record = cloud.record()

    cloud.cli("down")

    assert cloud.alive_pids(record) == []
    assert cloud.cli("status", check=False).returncode == 1
    assert cloud.cli("env", check=False).returncode != 0

    cloud.cli("up", "--no-pipeline")
    cloud.env.update(_exports(cloud))

    assert set(cloud.pids().values()).isdisjoint(c["pid"] for c in record["components"].values())
    body = cloud.client("s3").get_object(Bucket=config.LOCAL_BUCKET, Key="raw/audio/keep/r1.wav")["Body"].read()
    assert body == b"RIFF-keep"
    got = cloud.client("dynamodb").get_item(TableName=config.INGEST_STATE_TABLE, Key={"dataset": {"S": "keep"}})
    assert got["Item"] == item


def test_up_replaces_a_cloud_whose_router_died(cloud: LocalCloud) -> None:
    before = cloud.pids()
    os.kill(before["router"], signal.SIGKILL)
    wait_until(lambda: cloud.cli("status", check=False).returncode == 1, "status to notice the dead router")

    result = cloud.cli("up", "--no-pipeline")
    cloud.env.update(_exports(cloud))

    assert "already running" not in result.stdout
    assert len(cloud.alive_pids(cloud.record())) == 3
    tag = uuid.uuid4().hex
    put_record(cloud, {"tag": tag})
    wait_until(lambda: [e for e in handler_events(cloud, config.TRIGGER_FUNCTION) if record_data(e)["tag"] == tag],
               "the new router to deliver")


def test_shared_fixture_upserts_the_pipeline_and_points_os_environ_at_the_cloud(local_cloud: LocalCloud) -> None:
    from lambdas.shared import aws

    assert os.environ["AWS_ENDPOINT_URL"] == local_cloud.env["AWS_ENDPOINT_URL"]
    pipeline = aws.client("sagemaker").describe_pipeline(PipelineName=config.PIPELINE_NAME)
    assert pipeline["PipelineName"] == config.PIPELINE_NAME
    assert pipeline["RoleArn"] == provision.ROLE_ARN


def test_aws_cli_lists_the_pipelines_executions_and_status_counts_them(local_cloud: LocalCloud) -> None:
    aws = Path(sys.executable).parent / "aws"

    result = subprocess.run([str(aws), "sagemaker", "list-pipeline-executions", "--pipeline-name", config.PIPELINE_NAME],
                            capture_output=True, text=True, env={**local_cloud.process_env, **local_cloud.env},
                            timeout=120, check=True)

    executions = json.loads(result.stdout)["PipelineExecutionSummaries"]
    assert table_rows(local_cloud.cli("status").stdout)["Pipeline executions"] == [str(len(executions))]


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the rich tables in `text`: first cell -> the other cells."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_terminate_also_ends_what_a_component_left_in_its_own_session(tmp_path: Path) -> None:
    command = ["bash", "-c", "setsid sleep 300 & sleep 300 & wait"]
    process = subprocess.Popen(command, start_new_session=True)
    component = Component(name="probe", pid=process.pid, port=0, url="", log="", command=command)
    children = wait_until(lambda: len(descendants(process.pid)) == 2 and descendants(process.pid), "two children")

    cloud_module.terminate(component, grace=5)

    assert process.wait(timeout=10) is not None
    assert [pid for pid, argv in children if pid_alive(pid, argv)] == []


def test_up_with_a_file_as_state_dir_fails_clearly(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")

    result = subprocess.run([*samay_command(), "local", "up", "--state-dir", str(not_a_dir), "--no-pipeline"],
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert "cannot use" in result.stderr and "Traceback" not in result.stderr
