"""`samay push` against moto's server: uploads, skip-on-same-sha, records on the stream, retries."""
from __future__ import annotations

import csv
import hashlib
import wave
from pathlib import Path

import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from lambdas.shared import aws
from lambdas.shared.schemas import CommitRecord, RecordingRecord, parse_record
from pipelines import producer
from pipelines.cli import app

BUCKET, STREAM = "samay-test", "samay-ingest-test"


def write_wav(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(4000)
        out.writeframes(bytes((seed + i) % 256 for i in range(800)))


def write_dataset(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["file", "patient_id", "diagnosis", "location", "age"]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Three recordings of two patients, one unlabelled."""
    rows = [
        {"file": "audio/BP1.wav", "patient_id": "kauh_1", "diagnosis": "Asthma", "location": "P L L", "age": "70"},
        {"file": "audio/DP1.wav", "patient_id": "kauh_1", "diagnosis": "Asthma", "location": "P L L", "age": "70"},
        {"file": "audio/BP2.wav", "patient_id": "kauh_2", "diagnosis": "", "location": "P R U"},
    ]
    for seed, row in enumerate(rows):
        write_wav(tmp_path / "clinic" / row["file"], seed)
    return write_dataset(tmp_path / "clinic", rows)


@pytest.fixture
def targets(aws_endpoint: str) -> None:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    aws.client("kinesis").create_stream(StreamName=STREAM, ShardCount=2)


def stream_records() -> list[tuple[str, bytes]]:
    """(partition key, data) of everything on the stream, all shards."""
    kinesis = aws.client("kinesis")
    found = []
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        found += [(r["PartitionKey"], r["Data"]) for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    return found


def test_push_uploads_audio_and_sends_valid_records_then_a_commit(dataset: Path, targets: None) -> None:
    # GIVEN a dataset folder and an empty bucket and stream
    # WHEN it is pushed
    report = producer.push(dataset, bucket=BUCKET, stream=STREAM)
    # THEN every WAV is in raw/audio/<dataset>/ with its sha256 in the metadata
    assert (report.found, report.uploaded, report.skipped_uploads, report.sent, report.failures) == (3, 3, 0, 3, [])
    s3 = aws.client("s3")
    for name in ("BP1", "DP1", "BP2"):
        head = s3.head_object(Bucket=BUCKET, Key=f"raw/audio/clinic/{name}.wav")
        expected = hashlib.sha256((dataset / "audio" / f"{name}.wav").read_bytes()).hexdigest()
        assert head["Metadata"]["sha256"] == expected
    # AND the stream holds three recording records and one commit that the trigger's schema accepts
    records = [(key, parse_record(data, bucket=BUCKET)) for key, data in stream_records()]
    recordings = {r.recording_id: (key, r) for key, r in records if isinstance(r, RecordingRecord)}
    commits = [r for _, r in records if isinstance(r, CommitRecord)]
    assert sorted(recordings) == ["BP1", "BP2", "DP1"]
    assert {name: key for name, (key, _) in recordings.items()} == {"BP1": "kauh_1", "DP1": "kauh_1", "BP2": "kauh_2"}
    bp1 = recordings["BP1"][1]
    assert (bp1.dataset, bp1.diagnosis, bp1.metadata) == ("clinic", "Asthma", {"location": "P L L", "age": "70"})
    assert bp1.audio_uri == f"s3://{BUCKET}/raw/audio/clinic/BP1.wav"
    assert recordings["BP2"][1].diagnosis is None
    assert [(c.dataset, c.count, c.event_id) for c in commits] == [("clinic", 3, report.commit_event_id)]


def test_second_push_skips_audio_with_the_same_sha256(dataset: Path, targets: None) -> None:
    # GIVEN a dataset already pushed, then one file changed
    producer.push(dataset, bucket=BUCKET, stream=STREAM, dataset="kauh")
    write_wav(dataset / "audio" / "BP2.wav", seed=99)
    # WHEN it is pushed again
    report = producer.push(dataset, bucket=BUCKET, stream=STREAM, dataset="kauh")
    # THEN only the changed file is uploaded, and every record is sent again with a new commit
    assert (report.uploaded, report.skipped_uploads, report.sent) == (1, 2, 3)
    body = aws.client("s3").get_object(Bucket=BUCKET, Key="raw/audio/kauh/BP2.wav")["Body"].read()
    assert body == (dataset / "audio" / "BP2.wav").read_bytes()
    assert len(stream_records()) == 8


def test_bad_rows_are_reported_and_block_the_commit(tmp_path: Path, targets: None) -> None:
    # GIVEN a folder with one good row and rows that cannot be sent
    folder = tmp_path / "messy"
    write_wav(folder / "ok.wav", 1)
    write_wav(folder / "dup.wav", 2)
    (folder / "fake.wav").write_bytes(b"ID3 this is an mp3")
    write_wav(tmp_path / "outside.wav", 3)
    rows = [
        {"file": "ok.wav", "patient_id": "p1", "diagnosis": "Normal"},
        {"file": "dup.wav", "patient_id": "p2", "diagnosis": "Normal"},
        {"file": "dup.wav", "patient_id": "p2", "diagnosis": "Normal"},
        {"file": "gone.wav", "patient_id": "p3", "diagnosis": "Normal"},
        {"file": "fake.wav", "patient_id": "p4", "diagnosis": "Normal"},
        {"file": "ok.wav", "patient_id": "", "diagnosis": "Normal"},
        {"file": "../outside.wav", "patient_id": "p5", "diagnosis": "Normal"},
    ]
    write_dataset(folder, rows)
    # WHEN it is pushed
    report = producer.push(folder, bucket=BUCKET, stream=STREAM)
    # THEN the good rows are sent, each bad one is reported with its reason, and no commit goes out
    reasons = sorted((f.item, f.reason) for f in report.failures)
    assert reasons == [
        ("dup", "recording_id appears twice in labels.csv"),
        ("fake", "file fake.wav is not a RIFF/WAVE file"),
        ("gone", "file gone.wav does not exist"),
        ("ok", "patient_id is empty"),
        ("outside", "file ../outside.wav is outside the dataset folder"),
    ]
    assert report.sent == 2 and report.commit_event_id is None and not report.ok
    assert all(isinstance(parse_record(data), RecordingRecord) for _, data in stream_records())


def test_missing_labels_and_missing_targets_are_clear_errors(tmp_path: Path, dataset: Path, aws_endpoint: str) -> None:
    with pytest.raises(producer.DatasetError, match="no labels.csv"):
        producer.push(tmp_path, bucket=BUCKET, stream=STREAM)
    with pytest.raises(producer.StorageUnavailable, match=BUCKET):
        producer.push(dataset, bucket=BUCKET, stream=STREAM)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    with pytest.raises(producer.StreamUnavailable, match=STREAM):
        producer.push(dataset, bucket=BUCKET, stream=STREAM)


def entries(count: int, size: int = 10) -> list[producer.Entry]:
    return [producer.Entry(f"r{i}", b"x" * size, f"p{i}") for i in range(count)]


def test_batches_respect_record_and_byte_limits() -> None:
    assert [len(b) for b in producer.batches(entries(1201))] == [500, 500, 201]
    exactly_one_mib = entries(12, size=1024 * 1024 - 2)  # data + 2-byte partition key: five fill 5 MiB
    assert [len(b) for b in producer.batches(exactly_one_mib)] == [5, 5, 2]
    just_over = entries(12, size=1024 * 1024)  # a sixth byte too many: four per call
    assert [len(b) for b in producer.batches(just_over)] == [4, 4, 4]
    assert producer.batches([]) == []


def put_records_response(codes: list[str | None]) -> dict[str, object]:
    failed = sum(code is not None for code in codes)
    return {
        **({"FailedRecordCount": failed} if failed else {}),  # the model's minimum is 1: omitted when 0
        "Records": [{"ErrorCode": code, "ErrorMessage": "Rate exceeded"} if code else
                    {"SequenceNumber": "1", "ShardId": "shardId-000000000000"} for code in codes],
    }


def expected_params(batch: list[producer.Entry]) -> dict[str, object]:
    return {"StreamName": STREAM, "Records": [{"Data": e.data, "PartitionKey": e.partition_key} for e in batch]}


def test_only_throttled_entries_are_retried_until_accepted(aws_endpoint: str) -> None:
    # GIVEN Kinesis throttling the 2nd and 3rd entries once, then the 3rd again (moto never throttles,
    # so this one case uses botocore's Stubber on the cached client)
    batch = entries(3)
    client = aws.client("kinesis")
    sleeps: list[float] = []
    with Stubber(client) as stub:
        throttled = "ProvisionedThroughputExceededException"
        stub.add_response("put_records", put_records_response([None, throttled, throttled]), expected_params(batch))
        stub.add_response("put_records", put_records_response([None, throttled]), expected_params(batch[1:]))
        stub.add_response("put_records", put_records_response([None]), expected_params(batch[2:]))
        # WHEN the batch is sent
        failures = producer.KinesisSender(STREAM, sleep=sleeps.append).send(batch)
        # THEN each retry carried only the failed entries, with a backoff between calls, and all were accepted
        stub.assert_no_pending_responses()
    assert failures == [] and len(sleeps) == 2


def test_entries_still_failing_after_the_last_attempt_are_reported(aws_endpoint: str) -> None:
    batch = entries(2)
    with Stubber(aws.client("kinesis")) as stub:
        stub.add_response("put_records", put_records_response([None, "InternalFailure"]), expected_params(batch))
        stub.add_response("put_records", put_records_response(["InternalFailure"]), expected_params(batch[1:]))
        failures = producer.KinesisSender(STREAM, max_attempts=2, sleep=lambda _: None).send(batch)
    assert [(f.item, f.stage) for f in failures] == [("r1", "send")]
    assert "not accepted after 2 attempts: InternalFailure" in failures[0].reason


def test_cli_prints_a_summary_and_fails_on_failures(dataset: Path, targets: None) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["push", str(dataset), "--bucket", BUCKET, "--stream", STREAM])
    assert ok.exit_code == 0, ok.output
    assert "records sent" in ok.output and "clinic" in ok.output
    (dataset / "audio" / "BP1.wav").unlink()
    bad = runner.invoke(app, ["push", str(dataset), "--bucket", BUCKET, "--stream", STREAM, "--dataset", "again"])
    assert bad.exit_code == 1
    assert "does not exist" in bad.output and "commit was not sent" in bad.output
