"""samay-inference against moto's server (S3, DynamoDB, SageMaker control plane) and the scripted runtime."""
from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.inference import app
from lambdas.shared import aws, config
from tests.lambdas.context import LambdaContext
from tests.lambdas.runtime_stub import PROBABILITIES, RuntimeStub
from tests.lambdas.wav_bytes import wav_bytes

BUCKET = "samay-test"
EVENT_TEMPLATE = json.loads((Path(__file__).parents[1] / "events" / "s3_object_created.json").read_text())
PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/samaylungsoundmodels/3"


@pytest.fixture
def cloud(aws_endpoint: str, runtime_stub: RuntimeStub, monkeypatch: pytest.MonkeyPatch) -> Iterator[RuntimeStub]:
    """A bucket, the predictions table (with its patient GSI), a deployed endpoint's control-plane records."""
    monkeypatch.setenv("SAMAY_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Samay")
    app.MODELS.__init__()
    aws.client("s3").create_bucket(Bucket=BUCKET)
    aws.client("dynamodb").create_table(
        TableName=config.PREDICTIONS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "recording_id", "KeyType": "HASH"}, {"AttributeName": "model_version", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("recording_id", "model_version", "patient_id", "created_at")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "patient_id-created_at",
                "KeySchema": [{"AttributeName": "patient_id", "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model(ModelName="samay-m3", PrimaryContainer={"ModelPackageName": PACKAGE_ARN}, ExecutionRoleArn="arn:aws:iam::123456789012:role/samay-sagemaker-execution")
    sagemaker.create_endpoint_config(
        EndpointConfigName="samay-c3",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "samay-m3", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )
    sagemaker.create_endpoint(EndpointName=config.ENDPOINT_NAME, EndpointConfigName="samay-c3")
    yield runtime_stub
    app.MODELS.__init__()


def upload(name: str, body: bytes, metadata: dict[str, str] | None = None, bucket: str = BUCKET) -> dict[str, Any]:
    """Put the object under inference/incoming/ and return its S3 event record, as S3 would send it."""
    key = f"inference/incoming/{name}"
    response = aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {})
    record = copy.deepcopy(EVENT_TEMPLATE["Records"][0])
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"].update(key=key, size=len(body), eTag=response["ETag"].strip('"'))
    if response.get("VersionId"):
        record["s3"]["object"]["versionId"] = response["VersionId"]
    return record


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def invoke(evt: dict[str, Any]) -> dict[str, int]:
    return app.lambda_handler(json.loads(json.dumps(evt)), LambdaContext(function_name=config.INFERENCE_FUNCTION))


def items() -> list[dict[str, Any]]:
    raw = aws.client("dynamodb").scan(TableName=config.PREDICTIONS_TABLE)["Items"]
    deserializer = TypeDeserializer()
    return sorted(({k: deserializer.deserialize(v) for k, v in item.items()} for item in raw), key=lambda i: (i["recording_id"], i["model_version"]))


def lines() -> list[dict[str, Any]]:
    s3 = aws.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="predictions/").get("Contents", [])
    out = []
    for entry in listed:
        body = s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read().decode()
        out += [dict(json.loads(line), _key=entry["Key"]) for line in body.splitlines()]
    return sorted(out, key=lambda line: line["recording_id"])


def failed_keys() -> list[str]:
    return sorted(o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="inference/failed/").get("Contents", []))


def test_n_uploads_give_n_ok_items_and_n_lines(cloud: RuntimeStub) -> None:
    # GIVEN three recordings uploaded, one with patient metadata
    records = [upload("BP1.wav", wav_bytes(2.0), {"patient_id": "kauh_1", "location": "P L L", "device": "Littmann"}), upload("BP2.wav", wav_bytes(3.0)), upload("DP3.WAV", wav_bytes(4.0, bits=24))]
    # WHEN each notification arrives
    outcomes = [invoke(event(record)) for record in records]
    # THEN three OK items and three S3 lines, probabilities summing to 1, with the serving model's package
    assert outcomes == [{"OK": 1}] * 3
    stored = items()
    assert [(i["recording_id"], i["model_version"], i["status"], i["predicted_label"]) for i in stored] == [
        ("BP1", "1", "OK", "Normal"),
        ("BP2", "1", "OK", "Normal"),
        ("DP3", "1", "OK", "Normal"),
    ]
    for item in stored:
        assert float(sum(item["probabilities"].values())) == pytest.approx(1.0)
        assert item["model_package_arn"] == PACKAGE_ARN
        assert item["endpoint_name"] == config.ENDPOINT_NAME and item["s3_uri"].startswith(f"s3://{BUCKET}/inference/incoming/")
        assert item["latency_ms"] > 0 and datetime.fromisoformat(item["created_at"]).tzinfo is not None
    assert (stored[0]["patient_id"], stored[0]["location"], stored[0]["device"]) == ("kauh_1", "P L L", "Littmann")
    assert "patient_id" not in stored[1]
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    written = lines()
    assert [line["_key"] for line in written] == [f"predictions/dt={today}/{rid}.1.jsonl" for rid in ("BP1", "BP2", "DP3")]
    assert [line["probabilities"] for line in written] == [PROBABILITIES] * 3
    assert written[1]["patient_id"] is None and written[0]["patient_id"] == "kauh_1"
    assert len(cloud.calls()) == 3 and failed_keys() == []


def test_patient_gsi_finds_the_prediction(cloud: RuntimeStub) -> None:
    invoke(event(upload("BP9.wav", wav_bytes(2.0), {"patient_id": "kauh_9"})))
    found = aws.client("dynamodb").query(
        TableName=config.PREDICTIONS_TABLE,
        IndexName="patient_id-created_at",
        KeyConditionExpression="patient_id = :p",
        ExpressionAttributeValues={":p": {"S": "kauh_9"}},
    )["Items"]
    assert [item["recording_id"]["S"] for item in found] == ["BP9"]


def test_redelivered_event_adds_nothing(cloud: RuntimeStub) -> None:
    # GIVEN a scored upload
    record = upload("BP1.wav", wav_bytes(2.0))
    invoke(event(record))
    # WHEN S3 delivers the same notification again
    second = invoke(event(record))
    # THEN nothing new: one item, one line, one endpoint call
    assert second == {"DUPLICATE": 1}
    assert (len(items()), len(lines()), len(cloud.calls())) == (1, 1, 1)


def test_identical_reupload_to_a_versioned_bucket_adds_nothing(cloud: RuntimeStub) -> None:
    # GIVEN a versioned bucket and a scored upload
    aws.client("s3").put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = upload("BP1.wav", wav_bytes(2.0))
    invoke(event(first))
    # WHEN the identical bytes are uploaded again (a new version, a new event)
    second = upload("BP1.wav", wav_bytes(2.0))
    assert second["s3"]["object"]["versionId"] != first["s3"]["object"]["versionId"]
    outcome = invoke(event(second))
    # THEN nothing is added and the endpoint is not called again
    assert outcome == {"DUPLICATE": 1}
    assert (len(items()), len(lines()), len(cloud.calls())) == (1, 1, 1)


def test_corrupt_file_gives_one_failed_item_and_a_copy(cloud: RuntimeStub) -> None:
    # GIVEN a .wav upload that is not audio
    body = b"this is a text file renamed to .wav\n" * 10
    # WHEN it is processed
    outcome = invoke(event(upload("EP7.wav", body, {"patient_id": "kauh_7"})))
    # THEN one FAILED item naming the reason, one line, and the bytes copied aside with a reason file
    assert outcome == {"FAILED": 1}
    (item,) = items()
    assert (item["recording_id"], item["model_version"], item["status"], item["error_reason"]) == ("EP7", "none", "FAILED", "not_wav")
    assert item["error"].startswith("EP7.wav: not a RIFF/WAVE file") and item["patient_id"] == "kauh_7"
    assert "predicted_label" not in item and "probabilities" not in item
    (line,) = lines()
    assert (line["status"], line["error_reason"], line["predicted_label"]) == ("FAILED", "not_wav", None)
    assert failed_keys() == ["inference/failed/EP7.json", "inference/failed/EP7.wav"]
    s3 = aws.client("s3")
    assert s3.get_object(Bucket=BUCKET, Key="inference/failed/EP7.wav")["Body"].read() == body
    reason = json.loads(s3.get_object(Bucket=BUCKET, Key="inference/failed/EP7.json")["Body"].read())
    assert (reason["reason"], reason["source"]) == ("not_wav", f"s3://{BUCKET}/inference/incoming/EP7.wav")
    # AND the endpoint was never called; a redelivery adds nothing
    assert cloud.calls() == []
    assert invoke(event(upload("EP7.wav", body))) == {"DUPLICATE": 1}
    assert (len(items()), len(lines())) == (1, 1)


def test_endpoint_failing_twice_then_answering_gives_one_ok_item(cloud: RuntimeStub) -> None:
    cloud.script({"status": 503, "error": "ServiceUnavailable"}, {"status": 429, "error": "ModelNotReadyException"})
    assert invoke(event(upload("BP1.wav", wav_bytes(2.0)))) == {"OK": 1}
    assert [(i["status"], i["model_version"]) for i in items()] == [("OK", "1")]
    assert len(cloud.calls()) == 3 and failed_keys() == []


def test_mixed_batch_handles_every_record(cloud: RuntimeStub) -> None:
    # GIVEN one notification holding a good, a corrupt and a truncated recording
    good, corrupt, truncated = upload("BP1.wav", wav_bytes(2.0)), upload("BP2.wav", b"\x00" * 4000), upload("BP3.wav", wav_bytes(2.0)[:-3000])
    # WHEN it is processed
    outcome = invoke(event(good, corrupt, truncated))
    # THEN each record ends in its own place
    assert outcome == {"OK": 1, "FAILED": 2}
    assert [(i["recording_id"], i["status"], i.get("error_reason")) for i in items()] == [
        ("BP1", "OK", None),
        ("BP2", "FAILED", "not_wav"),
        ("BP3", "FAILED", "truncated"),
    ]
    assert len(lines()) == 3 and len(cloud.calls()) == 1
    assert failed_keys() == [f"inference/failed/BP{n}.{ext}" for n in (2, 3) for ext in ("json", "wav")]


def test_audio_the_endpoint_rejects_is_failed_without_retries(cloud: RuntimeStub) -> None:
    cloud.script({"status": 424, "error": "ModelError", "original_status": 400, "message": "BP1.wav: 0.6 s is shorter than one 2.0 s window"})
    assert invoke(event(upload("BP1.wav", wav_bytes(0.6)))) == {"FAILED": 1}
    (item,) = items()
    assert item["error_reason"] == "rejected_by_endpoint" and "shorter than one 2.0 s window" in item["error"]
    assert len(cloud.calls()) == 1 and "inference/failed/BP1.wav" in failed_keys()


def test_endpoint_down_after_retries_is_failed_with_the_reason(cloud: RuntimeStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_INVOKE_MAX_ATTEMPTS", "3")
    cloud.script(*[{"status": 503, "error": "ServiceUnavailable", "message": "instance unhealthy"}] * 3)
    assert invoke(event(upload("BP1.wav", wav_bytes(2.0)))) == {"FAILED": 1}
    (item,) = items()
    assert item["error_reason"] == "endpoint_unavailable" and "gave up after 3 attempts" in item["error"]
    assert len(cloud.calls()) == 3 and "inference/failed/BP1.wav" in failed_keys()
    # AND once the endpoint is back, a redelivery scores it
    assert invoke(event(upload("BP1.wav", wav_bytes(2.0)))) == {"OK": 1}
    assert [(i["model_version"], i["status"]) for i in items()] == [("1", "OK"), ("none", "FAILED")]


def test_oversized_object_is_failed_without_download(cloud: RuntimeStub) -> None:
    # GIVEN an upload larger than one endpoint call may carry
    record = upload("BP1.wav", wav_bytes(1.0) + bytes(6_000_000), {"patient_id": "kauh_1"})
    # WHEN it is processed THEN it is FAILED on its size (metadata kept), copied aside, never sent
    assert invoke(event(record)) == {"FAILED": 1}
    (item,) = items()
    assert (item["error_reason"], item["patient_id"]) == ("too_large", "kauh_1")
    assert "audio_sha256" not in item and "inference/failed/BP1.wav" in failed_keys()
    assert cloud.calls() == []


def test_object_deleted_before_processing_is_failed_without_copy(cloud: RuntimeStub) -> None:
    record = upload("BP1.wav", wav_bytes(1.0))
    aws.client("s3").delete_object(Bucket=BUCKET, Key="inference/incoming/BP1.wav")
    assert invoke(event(record)) == {"FAILED": 1}
    (item,) = items()
    assert item["error_reason"] == "object_missing" and failed_keys() == []


def test_different_audio_under_a_scored_id_is_set_aside(cloud: RuntimeStub) -> None:
    invoke(event(upload("BP1.wav", wav_bytes(2.0))))
    outcome = invoke(event(upload("BP1.wav", wav_bytes(3.0))))
    assert outcome == {"FAILED": 1}
    assert [(i["model_version"], i["status"], i.get("error_reason")) for i in items()] == [("1", "OK", None), ("none", "FAILED", "conflicting_upload")]
    assert "inference/failed/BP1.wav" in failed_keys()


def test_s3_error_retries_the_event_after_the_other_records(cloud: RuntimeStub) -> None:
    # GIVEN a notification whose second record S3 answers with an error (a 400, not "the object is gone"):
    # a fault of the infrastructure, not of the audio
    good = upload("BP1.wav", wav_bytes(2.0))
    broken = copy.deepcopy(good)
    broken["s3"]["object"]["versionId"] = "not-a-version-id"
    # WHEN it is processed THEN the good record is stored and the event fails so Lambda retries it
    with pytest.raises(app.RecordsNotProcessed, match="1 of 2 records"):
        invoke(event(good, broken))
    assert [(i["recording_id"], i["status"]) for i in items()] == [("BP1", "OK")]
    # AND the retry of the good record adds nothing
    with pytest.raises(app.RecordsNotProcessed):
        invoke(event(good, broken))
    assert (len(items()), len(lines()), len(cloud.calls())) == (1, 1, 1)


def test_objects_outside_incoming_are_ignored(cloud: RuntimeStub) -> None:
    record = upload("BP1.wav", wav_bytes(2.0))
    record["s3"]["object"]["key"] = "raw/audio/BP1.wav"
    assert invoke(event(record)) == {"IGNORED": 1}
    assert items() == [] and cloud.calls() == []


def test_url_encoded_keys_are_decoded(cloud: RuntimeStub) -> None:
    record = upload("BP 1 (left).wav", wav_bytes(2.0))
    record["s3"]["object"]["key"] = "inference/incoming/BP+1+%28left%29.wav"
    assert invoke(event(record)) == {"OK": 1}
    assert [i["recording_id"] for i in items()] == ["BP 1 (left)"]


def test_logs_name_the_reason_and_hold_no_patient_data(cloud: RuntimeStub) -> None:
    # GIVEN the function's log stream captured, and a good and a corrupt upload with patient metadata
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(app.logger.registered_formatter)
    app.logger.addHandler(handler)
    meta = {"patient_id": "kauh_42", "location": "P R U", "device": "Littmann"}
    try:
        invoke(event(upload("BP1.wav", wav_bytes(2.0), meta), upload("BP2.wav", b"RIFF....junk", meta)))
    finally:
        app.logger.removeHandler(handler)
    # THEN the structured log has one line per record, the failure with its reason, and no patient fields
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    records = {entry["recording_id"]: entry for entry in logged if "recording_id" in entry}
    assert (records["BP1"]["outcome"], records["BP2"]["level"], records["BP2"]["reason"]) == ("OK", "ERROR", "not_wav")
    text = json.dumps(logged)
    assert "kauh_42" not in text and "P R U" not in text


def test_model_package_is_looked_up_again_when_the_model_version_changes(cloud: RuntimeStub) -> None:
    # GIVEN a prediction made by model version 1 (package 3)
    invoke(event(upload("BP1.wav", wav_bytes(2.0))))
    # WHEN the endpoint is redeployed with package 4 and starts answering as version 2
    sagemaker = aws.client("sagemaker")
    new_arn = PACKAGE_ARN.replace("/3", "/4")
    sagemaker.create_model(ModelName="samay-m4", PrimaryContainer={"ModelPackageName": new_arn}, ExecutionRoleArn="arn:aws:iam::123456789012:role/samay-sagemaker-execution")
    sagemaker.create_endpoint_config(
        EndpointConfigName="samay-c4",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "samay-m4", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )
    sagemaker.delete_endpoint(EndpointName=config.ENDPOINT_NAME)
    sagemaker.create_endpoint(EndpointName=config.ENDPOINT_NAME, EndpointConfigName="samay-c4")
    cloud.script({"status": 200, "body": {"label": "COPD", "probabilities": {"COPD": 0.9, "Normal": 0.1}, "model_version": "2", "windows": 1}})
    invoke(event(upload("BP2.wav", wav_bytes(2.0))))
    # THEN each prediction names the package that made it
    assert [(i["recording_id"], i["model_version"], i["model_package_arn"]) for i in items()] == [("BP1", "1", PACKAGE_ARN), ("BP2", "2", new_arn)]


def test_unknown_model_package_does_not_stop_the_prediction(cloud: RuntimeStub) -> None:
    aws.client("sagemaker").delete_endpoint(EndpointName=config.ENDPOINT_NAME)
    assert invoke(event(upload("BP1.wav", wav_bytes(2.0)))) == {"OK": 1}
    (item,) = items()
    assert "model_package_arn" not in item and item["status"] == "OK"


def test_failed_model_package_lookup_is_asked_again(cloud: RuntimeStub) -> None:
    # GIVEN a prediction stored without a package because the endpoint could not be described
    sagemaker = aws.client("sagemaker")
    sagemaker.delete_endpoint(EndpointName=config.ENDPOINT_NAME)
    invoke(event(upload("BP1.wav", wav_bytes(2.0))))
    # WHEN the endpoint can be described again and the same model version scores another recording
    sagemaker.create_endpoint(EndpointName=config.ENDPOINT_NAME, EndpointConfigName="samay-c3")
    invoke(event(upload("BP2.wav", wav_bytes(2.0))))
    # THEN the failure was not cached: the second prediction names the package
    assert [(i["recording_id"], i.get("model_package_arn")) for i in items()] == [("BP1", None), ("BP2", PACKAGE_ARN)]


def test_redelivery_after_a_crash_between_the_writes_completes_the_s3_line(cloud: RuntimeStub) -> None:
    # GIVEN a stored item whose S3 line was never written (the first attempt died between the two writes)
    record = upload("BP1.wav", wav_bytes(2.0))
    invoke(event(record))
    (line,) = lines()
    aws.client("s3").delete_object(Bucket=BUCKET, Key=line["_key"])
    # WHEN the event is delivered again
    invoke(event(record))
    # THEN the same line is back, made from the stored item (same created_at), and still one item
    (restored,) = lines()
    assert restored == line and len(items()) == 1 and len(cloud.calls()) == 1
