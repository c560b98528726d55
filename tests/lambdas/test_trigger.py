"""λ trigger against moto's server: every record ends in exactly one place, one run per commit."""
from __future__ import annotations

import base64
import copy
import csv
import hashlib
import importlib
import io
import json
import random
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from lambdas.shared import aws
from lambdas.shared.config import IDEMPOTENCY_TABLE, INGEST_STATE_TABLE, LOCAL_BUCKET, PIPELINE_NAME, TRIGGER_FUNCTION
from lambdas.shared.schemas import audio_uri
from lambdas.trigger import completion
from lambdas.trigger.errors import PipelineStartFailed
from tests.lambdas.context import LambdaContext

EVENTS = Path(__file__).resolve().parents[1] / "events"
ROLE_ARN = "arn:aws:iam::123456789012:role/samay-sagemaker-execution"
SENT_AT = "2024-05-01T10:00:00Z"


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext(function_name=TRIGGER_FUNCTION)


def create_pipeline() -> None:
    definition = {"Version": "2020-12-01", "Parameters": [{"Name": "InputDataUrl", "Type": "String"}], "Steps": []}
    aws.client("sagemaker").create_pipeline(
        PipelineName=PIPELINE_NAME, PipelineDefinition=json.dumps(definition), RoleArn=ROLE_ARN,
        ClientRequestToken=str(uuid.uuid4()),
    )


@pytest.fixture
def cloud(aws_endpoint: str) -> None:
    """The resources the stack gives the trigger: bucket, state and idempotency tables, the pipeline."""
    aws.client("s3").create_bucket(Bucket=LOCAL_BUCKET)
    dynamodb = aws.client("dynamodb")
    for table, key in ((INGEST_STATE_TABLE, "dataset"), (IDEMPOTENCY_TABLE, "id")):
        dynamodb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        )
    create_pipeline()


@pytest.fixture
def app(cloud: None) -> ModuleType:
    """The handler module, imported once the AWS variables point at moto (its clients are module-level)."""
    return importlib.import_module("lambdas.trigger.app")


def pipe_event(data: bytes, sequence: int = 1) -> dict[str, Any]:
    """The EventBridge event the rule delivers for one Kinesis record."""
    event = json.loads((EVENTS / "trigger_pipe_event.json").read_text())
    event["id"] = str(uuid.uuid4())
    event["detail"]["data"] = base64.b64encode(data).decode()
    event["detail"]["sequenceNumber"] = str(sequence)
    event["detail"]["eventID"] = f"shardId-000000000000:{sequence}"
    return event


def put_audio(dataset: str, recording_id: str, body: bytes) -> str:
    aws.client("s3").put_object(Bucket=LOCAL_BUCKET, Key=f"raw/audio/{dataset}/{recording_id}.wav", Body=body)
    return hashlib.sha256(body).hexdigest()


def recording(dataset: str, recording_id: str, patient_id: str, diagnosis: str | None, sha: str,
              **changes: Any) -> dict[str, Any]:
    record = {
        "schema_version": 1, "type": "recording", "event_id": str(uuid.uuid4()), "dataset": dataset,
        "recording_id": recording_id, "patient_id": patient_id,
        "audio_uri": audio_uri(LOCAL_BUCKET, dataset, recording_id), "sha256": sha, "diagnosis": diagnosis,
        "metadata": {"location": "P L L", "age": 41}, "recorded_at": None, "sent_at": SENT_AT,
    }
    return {**record, **changes}


def commit(dataset: str, count: int) -> dict[str, Any]:
    return {"schema_version": 1, "type": "commit", "event_id": str(uuid.uuid4()), "dataset": dataset,
            "count": count, "sent_at": SENT_AT}


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def objects(prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every JSON-lines object under `prefix`, keyed by object name without date or suffix."""
    s3 = aws.client("s3")
    found: dict[str, list[dict[str, Any]]] = {}
    for item in s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=LOCAL_BUCKET, Key=item["Key"])["Body"].read().decode()
        name = item["Key"].rsplit("/", 1)[1].removesuffix(".jsonl")
        assert name not in found, f"{name} written twice under {prefix}"
        found[name] = [json.loads(line) for line in body.splitlines()]
    return found


def executions() -> list[dict[str, Any]]:
    return aws.client("sagemaker").list_pipeline_executions(PipelineName=PIPELINE_NAME)["PipelineExecutionSummaries"]


def input_data_url(execution_arn: str) -> str:
    parameters = aws.client("sagemaker").list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution_arn)["PipelineParameters"]
    return next(p["Value"] for p in parameters if p["Name"] == "InputDataUrl")


def read_csv_rows(uri: str) -> list[dict[str, str]]:
    key = uri.removeprefix(f"s3://{LOCAL_BUCKET}/")
    text = aws.client("s3").get_object(Bucket=LOCAL_BUCKET, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(text)))


def deliver(app: ModuleType, context: LambdaContext) -> Callable[[bytes], dict[str, Any]]:
    counter = iter(range(1, 10_000))
    return lambda data: app.lambda_handler(pipe_event(data, next(counter)), context)


def test_every_record_ends_in_exactly_one_place_and_one_run_starts(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN five good recordings (four labelled, one not), with their audio in the bucket
    good = []
    for index, diagnosis in enumerate(["Asthma", "Normal", "COPD", "Normal", None]):
        sha = put_audio("clinic", f"R{index}", f"audio-{index}".encode())
        good.append(recording("clinic", f"R{index}", f"p{index}", diagnosis, sha))
    # AND bad records of the same dataset, each with its own reason
    sha_bad = put_audio("clinic", "B5", b"bad-audio")
    missing_sha = recording("clinic", "B1", "p9", "Normal", sha_bad)
    del missing_sha["sha256"]
    bad = {
        "unknown_schema_version": recording("clinic", "B0", "p9", "Normal", sha_bad, schema_version=2),
        "missing_field": missing_sha,
        "audio_uri_outside_bucket": recording("clinic", "B2", "p9", "Normal", sha_bad,
                                              audio_uri="s3://someone-else/raw/audio/clinic/B5.wav"),
        "missing_object": recording("clinic", "B3", "p9", "Normal", sha_bad),
        "sha256_mismatch": recording("clinic", "B4", "p9", "Normal", "0" * 64,
                                     audio_uri=audio_uri(LOCAL_BUCKET, "clinic", "B5")),
        "invalid_field": recording("clinic", "B6", "p9", 7, sha_bad,
                                   audio_uri=audio_uri(LOCAL_BUCKET, "clinic", "B5")),
        "path_traversal": recording("clinic", "B7", "p9", "Normal", sha_bad,
                                    audio_uri=f"s3://{LOCAL_BUCKET}/raw/audio/../quarantine/B5.wav"),
    }
    not_json = b"\x00{this is not json"
    the_commit = commit("clinic", len(good) + len(bad))
    # AND a shuffled delivery order with every good record and the commit twice,
    # the commit arriving before the last recordings
    batch = [encode(r) for r in good] * 2 + [encode(r) for r in bad.values()] + [not_json]
    random.Random(7).shuffle(batch)
    batch.insert(len(batch) // 2, encode(the_commit))
    batch.append(encode(the_commit))
    send = deliver(app, lambda_context)

    # WHEN each record is delivered to the handler
    results = [send(data) for data in batch]

    # THEN ledger and quarantine hold every distinct record exactly once, and none in both
    accepted, quarantined = objects("raw/records/"), objects("quarantine/")
    not_json_id = hashlib.sha256(not_json).hexdigest()
    assert set(accepted) == {r["event_id"] for r in good} | {the_commit["event_id"]}
    assert set(quarantined) == {r["event_id"] for r in bad.values()} | {not_json_id}
    assert all(len(lines) == 1 for lines in [*accepted.values(), *quarantined.values()])
    # AND every quarantine line carries its machine-readable reason and the raw record
    reasons = {name: lines[0]["reason"] for name, lines in quarantined.items()}
    assert reasons == {**{r["event_id"]: reason for reason, r in bad.items()}, not_json_id: "not_json"}
    assert quarantined[not_json_id][0]["record"] == not_json.decode()
    assert quarantined[bad["invalid_field"]["event_id"]][0]["field"] == "diagnosis"
    # AND the ledger lines are the records as sent
    assert accepted[good[0]["event_id"]][0] == good[0]
    # AND exactly one execution started, on a manifest of exactly the accepted labelled recordings
    runs = executions()
    assert len(runs) == 1
    assert [r["execution_arn"] for r in results if r.get("execution_arn")] == [runs[0]["PipelineExecutionArn"]]
    manifest_uri = input_data_url(runs[0]["PipelineExecutionArn"])
    assert manifest_uri == f"s3://{LOCAL_BUCKET}/datasets/clinic-{the_commit['event_id'][:8]}/manifest.csv"
    rows = read_csv_rows(manifest_uri)
    assert sorted(row["recording_id"] for row in rows) == ["R0", "R1", "R2", "R3"]
    assert list(rows[0])[:12] == ["recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset",
                                  "location", "device", "filter_mode", "sound_class", "age", "sex"]
    assert {row["audio_uri"] for row in rows} == {r["audio_uri"] for r in good if r["diagnosis"]}
    # AND the dataset state counted each distinct recording once
    item = aws.client("dynamodb").get_item(TableName=INGEST_STATE_TABLE, Key={"dataset": {"S": "clinic"}})["Item"]
    assert (item["processed_count"]["N"], item["commit_state"]["S"]) == ("12", "started")


def test_commit_waits_for_the_recording_that_completes_the_set(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a commit for two recordings that arrives first
    records = [recording("late", f"L{i}", f"p{i}", "Normal", put_audio("late", f"L{i}", f"l{i}".encode()))
               for i in range(2)]
    send = deliver(app, lambda_context)
    first = send(encode(commit("late", 2)))
    # WHEN the recordings follow, one by one
    middle = send(encode(records[0]))
    last = send(encode(records[1]))
    # THEN only the record that completes the set starts the run
    assert (first["execution_arn"], middle["execution_arn"]) == (None, None)
    assert last["execution_arn"] == executions()[0]["PipelineExecutionArn"]
    assert len(executions()) == 1


def test_identical_audio_under_different_patients_is_excluded(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN the real-data trap: the same bytes under two patients with different labels, plus a clean one
    shared = put_audio("dup", "BP100", b"same-bytes")
    put_audio("dup", "BP101", b"same-bytes")
    records = [recording("dup", "BP100", "kauh_100", "Normal", shared),
               recording("dup", "BP101", "kauh_101", "Asthma", shared),
               recording("dup", "BP102", "kauh_102", "Normal", put_audio("dup", "BP102", b"other"))]
    send = deliver(app, lambda_context)
    # WHEN they and their commit are delivered
    for record in [*records, commit("dup", 3)]:
        send(encode(record))
    # THEN both copies are accepted into the ledger but left out of the manifest, and listed as excluded
    assert len(objects("raw/records/")) == 4
    manifest_uri = input_data_url(executions()[0]["PipelineExecutionArn"])
    assert [row["recording_id"] for row in read_csv_rows(manifest_uri)] == ["BP102"]
    excluded = read_csv_rows(manifest_uri.replace("manifest.csv", "excluded.csv"))
    assert sorted((row["recording_id"], row["reason"]) for row in excluded) == [
        ("BP100", "identical_audio_conflict"), ("BP101", "identical_audio_conflict")]


def test_incomplete_commit_times_out_into_quarantine(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a commit for three recordings of which one arrived
    the_commit = commit("slow", 3)
    send = deliver(app, lambda_context)
    send(encode(the_commit))
    send(encode(recording("slow", "S0", "p0", "Normal", put_audio("slow", "S0", b"s0"))))
    # WHEN the next event for the dataset comes after the timeout
    later = datetime.now(timezone.utc) + timedelta(seconds=app.settings.commit_timeout_seconds + 1)
    started = completion.advance("slow", app.settings, later)
    # THEN no run starts and the commit ends in quarantine with reason commit_incomplete
    assert started is None and executions() == []
    quarantined = objects("quarantine/")
    assert quarantined[the_commit["event_id"]][0]["reason"] == "commit_incomplete"
    assert quarantined[the_commit["event_id"]][0]["record"]["count"] == 3
    assert the_commit["event_id"] not in objects("raw/records/")
    # AND a late recording does not revive it
    send(encode(recording("slow", "S1", "p1", "Normal", put_audio("slow", "S1", b"s1"))))
    assert executions() == []


def test_newer_commit_supersedes_a_pending_one(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a pending commit for two recordings, then a newer commit for one
    old, new = commit("redo", 2), commit("redo", 1)
    send = deliver(app, lambda_context)
    send(encode(old))
    send(encode(new))
    # WHEN the one recording arrives
    send(encode(recording("redo", "X0", "p0", "Normal", put_audio("redo", "X0", b"x0"))))
    # THEN the new commit starts the run and the old one is quarantined as superseded
    assert len(executions()) == 1
    assert objects("quarantine/")[old["event_id"]][0]["reason"] == "superseded"
    assert new["event_id"] in objects("raw/records/")


def test_failed_start_raises_and_the_retry_starts_once(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a complete dataset but (for now) no pipeline to start
    aws.client("sagemaker").delete_pipeline(PipelineName=PIPELINE_NAME, ClientRequestToken=str(uuid.uuid4()))
    send = deliver(app, lambda_context)
    send(encode(recording("retry", "Y0", "p0", "Normal", put_audio("retry", "Y0", b"y0"))))
    the_commit = encode(commit("retry", 1))
    # WHEN the commit's delivery fails to start the pipeline
    with pytest.raises(PipelineStartFailed, match=PIPELINE_NAME):
        send(the_commit)
    # THEN the commit is in neither ledger nor quarantine yet, and the platform's retry finishes the job
    assert len(objects("raw/records/")) == 1 and objects("quarantine/") == {}
    create_pipeline()
    result = send(the_commit)
    assert result["outcome"] == "commit_pending"  # the idempotent intake result of the first delivery
    assert result["execution_arn"] == executions()[0]["PipelineExecutionArn"]
    assert len(objects("raw/records/")) == 2
    send(the_commit)
    assert len(executions()) == 1


def test_auto_commit_after_enough_labelled_recordings(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN auto-commit at two new labelled recordings and a dataset pushed without a commit
    settings = replace(app.settings, auto_commit_min_recordings=2)
    send = deliver(app, lambda_context)
    for i in range(2):
        send(encode(recording("auto", f"A{i}", f"p{i}", "Normal", put_audio("auto", f"A{i}", f"a{i}".encode()))))
    # WHEN the dataset advances under that setting (twice: the second finds nothing new)
    first = completion.advance("auto", settings, datetime.now(timezone.utc))
    second = completion.advance("auto", settings, datetime.now(timezone.utc))
    # THEN one run started
    assert first == executions()[0]["PipelineExecutionArn"] and second is None
    assert len(executions()) == 1


def test_event_of_another_shape_is_quarantined(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN an event that is not a Kinesis record from the pipe
    event = json.loads((EVENTS / "trigger_not_a_pipe_event.json").read_text())
    # WHEN it reaches the handler
    result = app.lambda_handler(copy.deepcopy(event), lambda_context)
    # THEN it is kept whole in quarantine with reason invalid_event
    (lines,) = objects("quarantine/").values()
    assert result["reason"] == lines[0]["reason"] == "invalid_event"
    assert lines[0]["record"] == event


def test_event_without_account_is_still_a_pipe_record(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a pipe event as moto's EventBridge forwards it locally: no `account`
    record = recording("local", "L0", "p0", "Normal", put_audio("local", "L0", b"l0"))
    event = pipe_event(encode(record))
    del event["account"]
    # WHEN it reaches the handler  THEN the record is taken in as usual
    assert app.lambda_handler(event, lambda_context)["outcome"] == "ledger"
    assert set(objects("raw/records/")) == {record["event_id"]}


def test_manifest_needs_labelled_recordings(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a dataset of one unlabelled recording and its commit
    the_commit = commit("unlabelled", 1)
    send = deliver(app, lambda_context)
    send(encode(recording("unlabelled", "U0", "p0", None, put_audio("unlabelled", "U0", b"u0"))))
    # WHEN the commit completes it
    send(encode(the_commit))
    # THEN nothing starts and the commit is quarantined with a reason
    assert executions() == []
    assert objects("quarantine/")[the_commit["event_id"]][0]["reason"] == "no_labelled_recordings"


def test_handler_module_imports_no_tensorflow_or_librosa() -> None:
    # GIVEN a fresh interpreter  WHEN it imports the handler module  THEN no heavy ML library came along
    code = ("import sys, lambdas.trigger.app; "
            "print(sorted(m for m in ('tensorflow', 'librosa', 'steps') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": ""})
    assert out.stdout.strip() == "[]"


def test_redelivery_after_idempotency_expiry_changes_nothing(app: ModuleType, lambda_context: LambdaContext) -> None:
    # GIVEN a dataset fully taken in and started
    record = recording("again", "G0", "p0", "Normal", put_audio("again", "G0", b"g0"))
    the_commit = commit("again", 1)
    send = deliver(app, lambda_context)
    send(encode(record))
    send(encode(the_commit))
    before = (objects("raw/records/"), executions())
    # WHEN the idempotency records are gone (expired) and both records are delivered again
    dynamodb = aws.client("dynamodb")
    for item in dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]:
        dynamodb.delete_item(TableName=IDEMPOTENCY_TABLE, Key={"id": item["id"]})
    assert dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Count"] == 0
    results = [send(encode(record)), send(encode(the_commit))]
    # THEN the write-once objects and counted-once markers keep everything as it was
    assert (objects("raw/records/"), executions()) == before
    assert [r["outcome"] for r in results] == ["ledger", "commit_duplicate"]
    item = dynamodb.get_item(TableName=INGEST_STATE_TABLE, Key={"dataset": {"S": "again"}})["Item"]
    assert item["processed_count"]["N"] == "1"
