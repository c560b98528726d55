"""The event router: plays AWS's event plumbing into the Lambda handlers, with AWS's event shapes.

    Kinesis samay-ingest ──(KinesisPipe: EventBridge Pipe)──> PutEvents on bus samay
        ──(moto: rule recording-ingested, pattern match)──> SQS samay-trigger-events
        ──(AsyncInvoker: Lambda async invoke, 2 retries, on-failure DLQ)──> samay-trigger
    S3 ObjectCreated inference/incoming/*.wav ──(moto: bucket notification)──> SQS samay-inference-events
        ──(AsyncInvoker)──> samay-inference

Delivery is at least once: a Kinesis checkpoint advances only after PutEvents accepted the events,
and a queue message is deleted only after the function succeeded or the event reached its
dead-letter queue (Lambda's on-failure destination record, so nothing is lost). Retries wait by
making the message invisible for a backoff, so one failing event never blocks the others and a
router restart resumes where it stopped. One thread per loop; SIGTERM stops them cleanly.
Logs name shards, sequence numbers, message ids and functions — never record contents.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from botocore.exceptions import ClientError

from infra.local import provision
from infra.local.provision import Clients
from infra.local.state import HOST, StateDir
from lambdas.shared import config

logger = logging.getLogger(__name__)

Invoke = Callable[[str, dict], Any]
FUNCTIONS_ENV = "SAMAY_LOCAL_FUNCTIONS"  # JSON {function name: "module:attr"}, merged over functions.FUNCTIONS
BACKOFF_ENV = "SAMAY_ROUTER_BACKOFF_SECONDS"
PIPE_ARN = f"arn:aws:pipes:{config.DEFAULT_REGION}:{config.LOCAL_ACCOUNT_ID}:pipe/{config.PIPE_NAME}"
PUT_EVENTS_BATCH = 10  # PutEvents takes at most 10 entries
LONG_POLL_SECONDS = 5  # SQS long polling: few idle requests; stopping waits at most this long


class Stats:
    """Counters the health endpoint reports (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class Checkpoints:
    """Last sequence number delivered per shard, persisted as JSON; reset when the stream is re-created."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def bind(self, stream: str, created: str) -> None:
        entry = self._data.get(stream)
        if not entry or entry.get("created") != created:
            self._data[stream] = {"created": created, "shards": {}}
            self._save()

    def streams(self) -> dict[str, Any]:
        return {name: dict(entry) for name, entry in self._data.items()}

    def get(self, stream: str, shard_id: str) -> str | None:
        return self._data[stream]["shards"].get(shard_id)

    def set(self, stream: str, shard_id: str, sequence_number: str) -> None:
        self._data[stream]["shards"][shard_id] = sequence_number
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=2))
        tmp.replace(self.path)


def pipe_event_detail(record: dict[str, Any], shard_id: str, stream_arn: str, region: str) -> dict[str, Any]:
    """A Kinesis record as an EventBridge Pipe (no input transformer) puts it in `detail`."""
    arrival = record["ApproximateArrivalTimestamp"]
    return {
        "kinesisSchemaVersion": "1.0",
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": stream_arn,
        "awsRegion": region,
        "partitionKey": record["PartitionKey"],
        "sequenceNumber": record["SequenceNumber"],
        "data": base64.b64encode(record["Data"]).decode("ascii"),
        "approximateArrivalTimestamp": arrival.timestamp() if isinstance(arrival, datetime) else arrival,
    }


class KinesisPipe:
    """EventBridge Pipe samay-ingest-pipe: every shard of the stream -> PutEvents on the bus."""

    def __init__(self, clients: Clients, checkpoints: Checkpoints, stats: Stats, stop: threading.Event,
                 stream: str = config.STREAM_NAME, bus: str = config.EVENT_BUS_NAME, idle_seconds: float = 1.0) -> None:
        self.clients, self.checkpoints, self.stats, self.stop = clients, checkpoints, stats, stop
        self.stream, self.bus, self.idle_seconds = stream, bus, idle_seconds
        self.region = clients.env["AWS_DEFAULT_REGION"]
        self._iterators: dict[str, str | None] = {}
        self._stream_arn = ""
        self._created = ""
        self._bound_at = 0.0
        self.rebind_seconds = 10.0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                delivered = self.poll_once()
            except ClientError as err:
                logger.warning("pipe: %s; retrying", err.response.get("Error", {}).get("Code", err))
                self._iterators.clear()
                delivered = 0
            if not delivered:
                self.stop.wait(self.idle_seconds)

    def _bind(self) -> None:
        """(Re)read the stream's shards now and then: a re-created stream restarts from its first record."""
        if self._iterators and time.monotonic() - self._bound_at < self.rebind_seconds:
            return
        self._bound_at = time.monotonic()
        summary = self.clients("kinesis").describe_stream_summary(StreamName=self.stream)["StreamDescriptionSummary"]
        created = str(summary["StreamCreationTimestamp"])
        if created != self._created or not self._iterators:
            self._stream_arn, self._created = summary["StreamARN"], created
            self._iterators.clear()
            self.checkpoints.bind(self.stream, created)
            shards = self.clients("kinesis").list_shards(StreamName=self.stream)["Shards"]
            for shard in shards:
                self._iterators.setdefault(shard["ShardId"], self._iterator(shard["ShardId"]))

    def _iterator(self, shard_id: str) -> str:
        after = self.checkpoints.get(self.stream, shard_id)
        kwargs: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
            if after else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        return self.clients("kinesis").get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **kwargs)[
            "ShardIterator"
        ]

    def poll_once(self) -> int:
        """Read each shard once, deliver what was read; returns how many records were delivered."""
        self._bind()
        delivered = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None or self.stop.is_set():
                continue  # a closed shard (after resharding) has nothing more to give
            response = self.clients("kinesis").get_records(ShardIterator=iterator, Limit=100)
            records = response["Records"]
            for start in range(0, len(records), PUT_EVENTS_BATCH):
                batch = records[start:start + PUT_EVENTS_BATCH]
                if not self._put_events(shard_id, batch):
                    self._iterators[shard_id] = self._iterator(shard_id)  # re-read from the checkpoint
                    return delivered
                self.checkpoints.set(self.stream, shard_id, batch[-1]["SequenceNumber"])
                delivered += len(batch)
            self._iterators[shard_id] = response.get("NextShardIterator")
        return delivered

    def _put_events(self, shard_id: str, records: list[dict[str, Any]]) -> bool:
        """PutEvents until every entry is accepted (or the router stops: then the checkpoint stays)."""
        entries = [
            {
                "Source": config.PIPE_EVENT_SOURCE,
                "DetailType": config.PIPE_DETAIL_TYPE,
                "Detail": json.dumps(pipe_event_detail(r, shard_id, self._stream_arn, self.region)),
                "Resources": [PIPE_ARN],
                "EventBusName": self.bus,
            }
            for r in records
        ]
        attempt = 0
        while entries:
            response = self.clients("events").put_events(Entries=entries)
            failed = [e for e, result in zip(entries, response["Entries"]) if "ErrorCode" in result]
            self.stats.add("pipe_events_put", len(entries) - len(failed))
            if failed:
                attempt += 1
                logger.warning("pipe: %d of %d events refused by the bus; retrying", len(failed), len(entries))
                if self.stop.wait(min(2 ** attempt * 0.1, 5)):
                    return False
            entries = failed
        logger.info("pipe: %s delivered %d record(s) up to %s", shard_id, len(records), records[-1]["SequenceNumber"])
        return True


def failure_destination_record(function_name: str, event: dict, error_type: str, message: str,
                               attempts: int, region: str) -> dict[str, Any]:
    """What Lambda sends to an async invocation's on-failure destination when retries are exhausted."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{region}:{config.LOCAL_ACCOUNT_ID}:function:{function_name}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": error_type, "errorMessage": message},
    }


class AsyncInvoker:
    """Drains a queue into a function the way Lambda's async invoke does: retries, then on-failure DLQ."""

    def __init__(self, clients: Clients, invoke: Invoke, stats: Stats, stop: threading.Event, *, queue: str,
                 function_name: str, dlq: str, max_attempts: int = 3, backoff_seconds: float = 1.0,
                 prepare: Callable[[dict], dict | None] | None = None) -> None:
        self.clients, self.invoke, self.stats, self.stop = clients, invoke, stats, stop
        self.queue, self.function_name, self.dlq = queue, function_name, dlq
        self.max_attempts, self.backoff_seconds = max_attempts, backoff_seconds
        self.prepare = prepare or (lambda event: event)
        self.region = clients.env["AWS_DEFAULT_REGION"]
        self._url: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once(wait_seconds=LONG_POLL_SECONDS)
            except ClientError as err:
                logger.warning("%s: %s; retrying", self.queue, err.response.get("Error", {}).get("Code", err))
                self._url = None
                self.stop.wait(1)

    def poll_once(self, wait_seconds: int = 1) -> int:
        sqs = self.clients("sqs")
        url = self._url = self._url or provision.queue_url(self.clients, self.queue)
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
            AttributeNames=["ApproximateReceiveCount"], VisibilityTimeout=360,
        ).get("Messages", [])
        for message in messages:
            if self.stop.is_set():  # hand back what this router will not handle, for the next one
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
                continue
            self._handle(url, message)
        return len(messages)

    def _handle(self, url: str, message: dict[str, Any]) -> None:
        sqs = self.clients("sqs")
        attempt = int(message["Attributes"]["ApproximateReceiveCount"])
        try:
            event = self.prepare(json.loads(message["Body"]))
        except (ValueError, KeyError, TypeError) as exc:  # not an event at all: retrying cannot help
            self._dead_letter(url, message, {"body": message["Body"]}, type(exc).__name__, str(exc), attempt)
            return
        if event is None:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return
        try:
            self.invoke(self.function_name, event)
        except Exception as exc:  # any failure of the invocation is the function's failure, as in Lambda
            error_type = getattr(exc, "error_type", type(exc).__name__)
            text = getattr(exc, "message", str(exc))
            self.stats.add(f"{self.function_name}_failures")
            if attempt >= self.max_attempts:
                self._dead_letter(url, message, event, error_type, text, attempt)
                return
            delay = int(self.backoff_seconds * 2 ** (attempt - 1))
            logger.warning("%s failed (%s, attempt %d/%d, message %s); retry in %d s", self.function_name,
                           error_type, attempt, self.max_attempts, message["MessageId"], delay)
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay)
            return
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        self.stats.add(f"{self.function_name}_invocations")
        logger.info("%s succeeded (message %s, attempt %d)", self.function_name, message["MessageId"], attempt)

    def _dead_letter(self, url: str, message: dict[str, Any], event: dict, error_type: str, text: str,
                     attempts: int) -> None:
        record = failure_destination_record(self.function_name, event, error_type, text, attempts, self.region)
        sqs = self.clients("sqs")
        sqs.send_message(QueueUrl=provision.queue_url(self.clients, self.dlq), MessageBody=json.dumps(record))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        self.stats.add(f"{self.function_name}_dead_lettered")
        logger.error("%s: message %s sent to %s after %d attempt(s) (%s)", self.function_name,
                     message["MessageId"], self.dlq, attempts, error_type)


EVENTBRIDGE_FIELDS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


def eventbridge_shape(event: dict) -> dict:
    """The event as an EventBridge rule hands it to a target.

    moto's SQS delivery adds an `ingestion-time` AWS does not send and leaves out `account`.
    """
    shaped = {"account": config.LOCAL_ACCOUNT_ID, **event}
    return {name: shaped[name] for name in EVENTBRIDGE_FIELDS if name in shaped}


class S3EventShaper:
    """Brings moto's S3 notification to AWS's shape before the inference function sees it.

    moto encodes '/' in keys and leaves out versionId and sequencer; AWS keeps '/' (and form-encodes
    the rest), and sends versionId on a versioned bucket and a sequencer that orders events per key.
    S3's s3:TestEvent (sent when a notification is configured) never reaches a function.
    """

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._counter = 0
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> dict | None:
        if event.get("Event") == "s3:TestEvent" or "Records" not in event:
            return None
        for record in event["Records"]:
            obj = record["s3"]["object"]
            key = unquote_plus(obj["key"])
            obj["key"] = quote_plus(key, safe="/")
            obj.setdefault("sequencer", self._sequencer())
            if "versionId" not in obj:
                version = self._version_id(record["s3"]["bucket"]["name"], key)
                if version:
                    obj["versionId"] = version
            record.setdefault("userIdentity", {"principalId": "AWS:local"})
            record.setdefault("requestParameters", {"sourceIPAddress": HOST})
            record.setdefault("responseElements", {"x-amz-request-id": uuid.uuid4().hex[:16].upper()})
        return event

    def _sequencer(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{time.time_ns():016X}{self._counter:04X}"

    def _version_id(self, bucket: str, key: str) -> str | None:
        try:
            version = self.clients("s3").head_object(Bucket=bucket, Key=key).get("VersionId")
        except ClientError:
            return None  # deleted since: the function will report the missing object itself
        return version if version and version != "null" else None


def default_invoke(overrides: Mapping[str, str] | None = None) -> Invoke:
    """Invoke through infra.local.functions, with a test's handler table merged over the project's."""
    from infra.local import functions  # imported here: it imports the handlers' shared modules

    table = {**functions.FUNCTIONS, **(overrides or {})}
    return lambda name, event: functions.invoke_function(name, event, functions=table)


class Router:
    """The three loops, each on its own thread, plus counters."""

    def __init__(self, clients: Clients, state: StateDir, invoke: Invoke, *, backoff_seconds: float = 1.0) -> None:
        self.stop_event = threading.Event()
        self.stats = Stats()
        checkpoints = Checkpoints(state.router / "checkpoints.json")
        self.loops: dict[str, Callable[[], None]] = {
            "pipe": KinesisPipe(clients, checkpoints, self.stats, self.stop_event).run,
            "trigger": AsyncInvoker(clients, invoke, self.stats, self.stop_event, queue=provision.TRIGGER_QUEUE,
                                    function_name=config.TRIGGER_FUNCTION, dlq=provision.TRIGGER_DLQ,
                                    backoff_seconds=backoff_seconds, prepare=eventbridge_shape).run,
            "inference": AsyncInvoker(clients, invoke, self.stats, self.stop_event, queue=provision.INFERENCE_QUEUE,
                                      function_name=config.INFERENCE_FUNCTION, dlq=provision.INFERENCE_DLQ,
                                      backoff_seconds=backoff_seconds, prepare=S3EventShaper(clients)).run,
        }
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, loop in self.loops.items():
            thread = threading.Thread(target=loop, name=f"router-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        logger.info("router started: %s", ", ".join(self.loops))

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)
        logger.info("router stopped")

    def alive(self) -> bool:
        return bool(self.threads) and all(t.is_alive() for t in self.threads)


def health_server(router: Router, port: int) -> ThreadingHTTPServer:
    """GET / -> {"status": "ok", "loops": [...], "counts": {...}}: how `local up` knows the router answers."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.dumps({"status": "ok" if router.alive() else "degraded", "loops": list(router.loops),
                               "counts": router.stats.snapshot()}).encode()
            self.send_response(200 if router.alive() else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of http.server)
            return

    return ThreadingHTTPServer((HOST, port), Handler)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The local cloud's event router (Kinesis pipe, rule target, S3 notification).")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True, help="port of the health endpoint on 127.0.0.1")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    state = StateDir.at(args.state_dir).ensure()
    overrides = json.loads(os.environ.get(FUNCTIONS_ENV, "{}"))
    router = Router(Clients(os.environ), state, default_invoke(overrides),
                    backoff_seconds=float(os.environ.get(BACKOFF_ENV, "1")))
    server = health_server(router, args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
    router.start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        router.stop()
        server.server_close()


if __name__ == "__main__":
    main(parse_args())
