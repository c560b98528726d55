"""The event router against a real moto server: AWS event shapes, at-least-once, retries, dead letters."""
from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.local import provision, router
from infra.local.functions import FunctionError
from infra.local.provision import Clients
from infra.local.state import StateDir
from lambdas.shared import config
from tests.fixtures.cloud import wait_until


class Recorder:
    """A test function: records the events it gets, fails its first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, name: str, event: dict) -> dict:
        self.calls.append((name, event))
        if len(self.calls) <= self.failures:
            raise FunctionError(name, "TransientError", f"call {len(self.calls)} fails")
        return {"ok": True}


@pytest.fixture
def clients(moto_clients: Clients) -> Clients:
    clients = moto_clients
    provision.provision(clients, provision.MOTO_STEPS)
    clients("sqs").purge_queue(QueueUrl=provision.queue_url(clients, provision.INFERENCE_QUEUE))
    return clients


def make_pipe(clients: Clients, tmp_path: Path) -> router.KinesisPipe:
    checkpoints = router.Checkpoints(StateDir(tmp_path).router / "checkpoints.json")
    return router.KinesisPipe(clients, checkpoints, router.Stats(), threading.Event())


def make_invoker(clients: Clients, invoke: Recorder, **kwargs: Any) -> router.AsyncInvoker:
    defaults = dict(queue=provision.TRIGGER_QUEUE, function_name=config.TRIGGER_FUNCTION, dlq=provision.TRIGGER_DLQ,
                    backoff_seconds=0, prepare=router.eventbridge_shape)
    return router.AsyncInvoker(clients, invoke, router.Stats(), threading.Event(), **{**defaults, **kwargs})


def drain(invoker: router.AsyncInvoker, until: Callable[[], Any], what: str) -> None:
    wait_until(lambda: invoker.poll_once(wait_seconds=0) >= 0 and until(), what)


def dlq_records(clients: Clients, name: str) -> list[dict]:
    url = provision.queue_url(clients, name)
    messages = clients("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def put_record(clients: Clients, payload: dict, key: str = "kauh_1") -> str:
    response = clients("kinesis").put_record(StreamName=config.STREAM_NAME, Data=json.dumps(payload).encode(),
                                             PartitionKey=key)
    return response["SequenceNumber"]


def test_kinesis_record_reaches_the_trigger_as_an_eventbridge_pipe_event(clients: Clients, tmp_path: Path) -> None:
    # GIVEN a record in the stream
    sequence = put_record(clients, {"type": "commit", "dataset": "d1"})
    recorder = Recorder()

    # WHEN the pipe and the rule-target invoker run
    make_pipe(clients, tmp_path).poll_once()
    drain(make_invoker(clients, recorder), lambda: recorder.calls, "the trigger call")

    # THEN the trigger gets one event of AWS's Pipe shape, routed by the rule's pattern
    ((name, event),) = recorder.calls
    assert name == config.TRIGGER_FUNCTION
    assert event["source"] == config.PIPE_EVENT_SOURCE
    assert event["detail-type"] == config.PIPE_DETAIL_TYPE
    assert event["resources"] == [router.PIPE_ARN]
    assert set(event) == set(router.EVENTBRIDGE_FIELDS)
    assert event["account"] == config.LOCAL_ACCOUNT_ID and event["region"] == "us-east-1" and event["version"] == "0"
    detail = event["detail"]
    assert detail["eventName"] == "aws:kinesis:record" and detail["eventSource"] == "aws:kinesis"
    assert detail["sequenceNumber"] == sequence and detail["partitionKey"] == "kauh_1"
    assert detail["eventID"].endswith(f":{sequence}") and detail["eventID"].startswith("shardId-")
    assert json.loads(base64.b64decode(detail["data"])) == {"type": "commit", "dataset": "d1"}


def test_pipe_resumes_after_its_checkpoint(clients: Clients, tmp_path: Path) -> None:
    for i in range(3):
        put_record(clients, {"n": i}, key=f"p{i}")
    assert make_pipe(clients, tmp_path).poll_once() == 3

    put_record(clients, {"n": 3}, key="p3")
    restarted = make_pipe(clients, tmp_path)

    assert restarted.poll_once() == 1
    assert restarted.poll_once() == 0


def test_pipe_starts_over_when_the_stream_is_recreated(clients: Clients, tmp_path: Path) -> None:
    put_record(clients, {"n": 0})
    make_pipe(clients, tmp_path).poll_once()
    clients("kinesis").delete_stream(StreamName=config.STREAM_NAME)
    time.sleep(1)  # creation timestamps have one-second resolution
    clients("kinesis").create_stream(StreamName=config.STREAM_NAME, ShardCount=1)
    clients("kinesis").get_waiter("stream_exists").wait(StreamName=config.STREAM_NAME, WaiterConfig={"Delay": 0.2})
    put_record(clients, {"n": 1})
    pipe = make_pipe(clients, tmp_path)

    assert pipe.poll_once() == 1


def test_transient_failure_is_retried_then_succeeds(clients: Clients, tmp_path: Path) -> None:
    put_record(clients, {"n": 0})
    make_pipe(clients, tmp_path).poll_once()
    recorder = Recorder(failures=2)

    drain(make_invoker(clients, recorder), lambda: len(recorder.calls) == 3, "three attempts")

    assert recorder.calls[0][1] == recorder.calls[2][1]
    assert dlq_records(clients, provision.TRIGGER_DLQ) == []
    assert make_invoker(clients, recorder).poll_once(wait_seconds=0) == 0  # deleted after the success


def test_failing_handler_ends_in_the_dlq_after_three_attempts(clients: Clients, tmp_path: Path) -> None:
    put_record(clients, {"n": 0})
    make_pipe(clients, tmp_path).poll_once()
    recorder = Recorder(failures=99)

    drain(make_invoker(clients, recorder), lambda: dlq_records(clients, provision.TRIGGER_DLQ) or None, "the DLQ")

    assert len(recorder.calls) == 3


def test_dead_letter_is_lambdas_on_failure_record(clients: Clients, tmp_path: Path) -> None:
    put_record(clients, {"n": 7})
    make_pipe(clients, tmp_path).poll_once()
    recorder = Recorder(failures=99)
    invoker = make_invoker(clients, recorder)
    records: list[dict] = []

    drain(invoker, lambda: records.extend(dlq_records(clients, provision.TRIGGER_DLQ)) or records, "the DLQ")

    (record,) = records
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"] == {"errorType": "TransientError", "errorMessage": "call 3 fails"}
    assert record["requestPayload"] == recorder.calls[0][1]


def test_message_that_is_not_json_goes_to_the_dlq_without_invoking(clients: Clients) -> None:
    url = provision.queue_url(clients, provision.TRIGGER_QUEUE)
    clients("sqs").send_message(QueueUrl=url, MessageBody="not json")
    recorder = Recorder()

    make_invoker(clients, recorder).poll_once(wait_seconds=0)

    assert recorder.calls == []
    (record,) = dlq_records(clients, provision.TRIGGER_DLQ)
    assert record["requestPayload"] == {"body": "not json"}


def test_s3_upload_reaches_inference_as_an_aws_shaped_s3_event(clients: Clients) -> None:
    key = "inference/incoming/site a/rec 1.wav"
    put = clients("s3").put_object(Bucket=config.LOCAL_BUCKET, Key=key, Body=b"RIFF....WAVE")
    recorder = Recorder()
    invoker = make_invoker(clients, recorder, queue=provision.INFERENCE_QUEUE, function_name=config.INFERENCE_FUNCTION,
                           dlq=provision.INFERENCE_DLQ, prepare=router.S3EventShaper(clients))

    drain(invoker, lambda: recorder.calls, "the inference call")

    ((name, event),) = recorder.calls
    assert name == config.INFERENCE_FUNCTION
    (record,) = event["Records"]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == config.LOCAL_BUCKET
    obj = record["s3"]["object"]
    assert obj["key"] == "inference/incoming/site+a/rec+1.wav"
    assert obj["size"] == len(b"RIFF....WAVE")
    assert obj["versionId"] == put["VersionId"]
    assert obj["eTag"] == put["ETag"].strip('"')
    assert len(obj["sequencer"]) >= 16


def test_s3_test_event_is_dropped(clients: Clients) -> None:
    url = provision.queue_url(clients, provision.INFERENCE_QUEUE)
    clients("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    recorder = Recorder()
    invoker = make_invoker(clients, recorder, queue=provision.INFERENCE_QUEUE, function_name=config.INFERENCE_FUNCTION,
                           dlq=provision.INFERENCE_DLQ, prepare=router.S3EventShaper(clients))

    assert invoker.poll_once(wait_seconds=0) == 1

    assert recorder.calls == []
    assert invoker.poll_once(wait_seconds=0) == 0


def test_router_threads_deliver_end_to_end_and_stop(clients: Clients, tmp_path: Path) -> None:
    recorder = Recorder()
    running = router.Router(clients, StateDir(tmp_path).ensure(), recorder, backoff_seconds=0)
    running.start()
    try:
        put_record(clients, {"n": 1})
        clients("s3").put_object(Bucket=config.LOCAL_BUCKET, Key="inference/incoming/r.wav", Body=b"RIFF")
        wait_until(lambda: {n for n, _ in recorder.calls} == {config.TRIGGER_FUNCTION, config.INFERENCE_FUNCTION},
                   "both functions")
        assert running.alive()
    finally:
        running.stop()
    assert not any(t.is_alive() for t in running.threads)
    assert running.stats.snapshot()["pipe_events_put"] == 1
