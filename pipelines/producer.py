"""`samay push`: a dataset folder (DESIGN 4.1) into S3 `raw/audio/` and Kinesis `samay-ingest`.

Per recording: hash the WAV, upload it to `raw/audio/<dataset>/<recording_id>.wav` unless an
object with the same sha256 (kept in its metadata) is already there, then send one `recording`
record (partition key = patient_id). When every recording went through, a `commit` record closes
the push with the count, and the trigger starts the pipeline once the dataset is complete. Rows
that cannot be sent are reported with a reason; a push with failures sends no commit, so a
partial dataset never trains (push again after fixing: uploads are skipped, records re-sent).
"""
from __future__ import annotations

import csv
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from botocore.exceptions import ClientError

from lambdas.shared import aws
from lambdas.shared.schemas import (
    CommitRecord,
    RecordingRecord,
    audio_uri,
    encode_record,
    is_safe_name,
    split_s3_uri,
)

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("file", "patient_id", "diagnosis")
RECORD_COLUMNS = {"file", "patient_id", "diagnosis", "recording_id"}  # everything else is metadata
MAX_BATCH_RECORDS = 500  # PutRecords limits
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
_UPLOADERS = 8
_CHUNK = 1024 * 1024


class DatasetError(ValueError):
    """The folder is not a dataset (no labels.csv, missing required columns)."""


class StorageUnavailable(RuntimeError):
    """The bucket is missing or not reachable: nothing can be uploaded."""


class StreamUnavailable(RuntimeError):
    """Kinesis refused the stream itself (missing, no access): no record can be sent."""


@dataclass(frozen=True)
class SourceRecording:
    recording_id: str
    patient_id: str
    diagnosis: str | None
    path: Path
    metadata: dict[str, str]


@dataclass(frozen=True)
class Failure:
    item: str  # recording id, or the labels.csv row when there is none
    stage: str  # read | upload | send
    reason: str


@dataclass
class PushReport:
    dataset: str
    found: int = 0
    uploaded: int = 0
    skipped_uploads: int = 0
    sent: int = 0
    failures: list[Failure] = field(default_factory=list)
    commit_event_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.commit_event_id is not None


class Progress(Protocol):
    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str, amount: int = 1) -> None: ...


class NoProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, amount: int = 1) -> None:
        pass


# --- reading the folder -------------------------------------------------------------------------

def load_labels(folder: Path) -> list[dict[str, str]]:
    """The rows of `labels.csv` (the one function to swap for steps.datasets.load_dataset)."""
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise DatasetError(f"{folder}: no {LABELS_FILE} (a dataset folder holds labels.csv and its WAV files)")
    with labels.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{labels}: missing required column(s) {', '.join(missing)}")
        return [dict(row) for row in reader]


def to_source(folder: Path, row: dict[str, str], line: int) -> SourceRecording | Failure:
    """One labels.csv row as a recording to push, or the reason it cannot be."""
    name = (row.get("file") or "").strip()
    path = (folder / name).resolve()
    recording_id = (row.get("recording_id") or "").strip() or Path(name).stem
    item = recording_id or f"{LABELS_FILE}:{line}"
    if not name:
        return Failure(item, "read", "labels.csv row has no file")
    if not path.is_relative_to(folder.resolve()):
        return Failure(item, "read", f"file {name} is outside the dataset folder")
    if not path.is_file():
        return Failure(item, "read", f"file {name} does not exist")
    if not is_safe_name(recording_id):
        return Failure(item, "read", "recording_id must be letters, digits, '.', '_' or '-' (no leading dot)")
    if not (row.get("patient_id") or "").strip():
        return Failure(item, "read", "patient_id is empty")
    if not _looks_like_wav(path):
        return Failure(item, "read", f"file {name} is not a RIFF/WAVE file")
    metadata = {k: v.strip() for k, v in row.items() if k and k not in RECORD_COLUMNS and v and v.strip()}
    return SourceRecording(recording_id, row["patient_id"].strip(), (row.get("diagnosis") or "").strip() or None,
                           path, metadata)


def _looks_like_wav(path: Path) -> bool:
    with path.open("rb") as handle:
        header = handle.read(12)
    return len(header) == 12 and header[:4] == b"RIFF" and header[8:] == b"WAVE"


def read_dataset(folder: Path) -> tuple[list[SourceRecording], list[Failure]]:
    """The recordings of the folder and the rows refused at the source (duplicates included)."""
    recordings: list[SourceRecording] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    for line, row in enumerate(load_labels(folder), start=2):
        result = to_source(folder, row, line)
        if isinstance(result, SourceRecording) and result.recording_id in seen:
            result = Failure(result.recording_id, "read", "recording_id appears twice in labels.csv")
        if isinstance(result, Failure):
            failures.append(result)
        else:
            seen.add(result.recording_id)
            recordings.append(result)
    return recordings, failures


# --- audio upload -------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload_audio(path: Path, uri: str, sha256: str) -> bool:
    """Upload unless the object already holds these bytes (its sha256 metadata); True if uploaded."""
    bucket, key = split_s3_uri(uri)
    s3 = aws.client("s3")
    try:
        stored = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256")
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
        stored = None
    if stored == sha256:
        return False
    s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": sha256}, "ContentType": "audio/wav"})
    return True


# --- Kinesis ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    key: str  # what a failure is reported under
    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


def batches(entries: Sequence[Entry]) -> list[list[Entry]]:
    """PutRecords-sized groups: at most 500 records and 5 MiB each, order kept."""
    groups: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == MAX_BATCH_RECORDS or size + entry.size > MAX_BATCH_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        groups.append(current)
    return groups


_RETRYABLE_CALL_ERRORS = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException",
                          "KMSThrottlingException", "InternalFailure", "ServiceUnavailable"}


@dataclass
class KinesisSender:
    """PutRecords with retries of only the entries that failed (throttled or internal), bounded."""

    stream: str
    max_attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def send(self, entries: Sequence[Entry], progress: Progress = NoProgress()) -> list[Failure]:
        failures: list[Failure] = []
        for group in batches(entries):
            failures.extend(self._send_batch(group, progress))
        return failures

    def _send_batch(self, group: list[Entry], progress: Progress) -> list[Failure]:
        pending = group
        errors: dict[str, str] = {}
        for attempt in range(self.max_attempts):
            if attempt:  # full jitter: throttled producers must not retry in lockstep
                self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt)))
            remaining, errors = self._put(pending)
            progress.advance("send", len(pending) - len(remaining))
            pending = remaining
            if not pending:
                return []
        return [Failure(e.key, "send", f"not accepted after {self.max_attempts} attempts: {errors[e.key]}")
                for e in pending]

    def _put(self, pending: list[Entry]) -> tuple[list[Entry], dict[str, str]]:
        """(entries still to send, their last error) after one PutRecords call."""
        try:
            response = aws.client("kinesis").put_records(
                StreamName=self.stream,
                Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
            )
        except ClientError as err:
            code = err.response["Error"]["Code"]
            if code not in _RETRYABLE_CALL_ERRORS:
                raise StreamUnavailable(f"Kinesis stream {self.stream}: {code}: "
                                        f"{err.response['Error'].get('Message', '')}") from err
            return pending, {e.key: code for e in pending}
        failed = [(e, r) for e, r in zip(pending, response["Records"]) if r.get("ErrorCode")]
        return [e for e, _ in failed], {e.key: f"{r['ErrorCode']}: {r.get('ErrorMessage', '')}" for e, r in failed}


# --- the push -----------------------------------------------------------------------------------

def check_targets(bucket: str, stream: str) -> None:
    """Fail before any upload when the bucket or the stream is not there."""
    try:
        aws.client("s3").head_bucket(Bucket=bucket)
    except ClientError as err:
        raise StorageUnavailable(f"bucket {bucket}: {err.response['Error']['Code']} "
                                 "(is the local cloud up, or SAMAY_BUCKET set?)") from err
    try:
        aws.client("kinesis").describe_stream_summary(StreamName=stream)
    except ClientError as err:
        raise StreamUnavailable(f"Kinesis stream {stream}: {err.response['Error']['Code']}") from err


def prepare(source: SourceRecording, dataset: str, bucket: str, sent_at: datetime) -> tuple[RecordingRecord, bool]:
    """Upload the audio (if needed) and build its record; (record, uploaded)."""
    sha = sha256_file(source.path)
    uri = audio_uri(bucket, dataset, source.recording_id)
    uploaded = upload_audio(source.path, uri, sha)
    record = RecordingRecord(
        event_id=str(uuid.uuid4()), dataset=dataset, recording_id=source.recording_id,
        patient_id=source.patient_id, audio_uri=uri, sha256=sha, diagnosis=source.diagnosis,
        metadata=dict(source.metadata), sent_at=sent_at,
    )
    return record, uploaded


def upload_all(sources: Sequence[SourceRecording], dataset: str, bucket: str, report: PushReport,
               progress: Progress) -> list[RecordingRecord]:
    """Hash and upload in parallel; failures land in the report, records come back in input order."""
    sent_at = datetime.now(timezone.utc)

    def one(source: SourceRecording) -> tuple[RecordingRecord, bool] | Failure:
        try:
            return prepare(source, dataset, bucket, sent_at)
        except (ClientError, OSError) as err:
            code = err.response["Error"]["Code"] if isinstance(err, ClientError) else type(err).__name__
            return Failure(source.recording_id, "upload", f"{code}: {err}")
        finally:
            progress.advance("upload")

    records: list[RecordingRecord] = []
    with ThreadPoolExecutor(max_workers=_UPLOADERS) as pool:
        for result in pool.map(one, sources):
            if isinstance(result, Failure):
                report.failures.append(result)
                continue
            record, uploaded = result
            report.uploaded += int(uploaded)
            report.skipped_uploads += int(not uploaded)
            records.append(record)
    return records


def to_entries(records: Sequence[RecordingRecord], report: PushReport) -> list[Entry]:
    entries = []
    for record in records:
        entry = Entry(record.recording_id, encode_record(record), record.patient_id)
        if entry.size > MAX_RECORD_BYTES:
            report.failures.append(Failure(record.recording_id, "send", "record is larger than Kinesis' 1 MiB"))
        else:
            entries.append(entry)
    return entries


def push(folder: Path, *, dataset: str | None = None, bucket: str, stream: str,
         progress: Progress = NoProgress(), sender: KinesisSender | None = None) -> PushReport:
    """Upload and send one dataset folder; the commit goes out only when everything else did."""
    folder = Path(folder)
    dataset = dataset or folder.resolve().name
    if not is_safe_name(dataset):
        raise DatasetError(f"dataset name {dataset!r}: use letters, digits, '.', '_' or '-' (--dataset NAME)")
    sources, failures = read_dataset(folder)
    check_targets(bucket, stream)
    sender = sender or KinesisSender(stream)
    report = PushReport(dataset=dataset, found=len(sources) + len(failures), failures=list(failures))
    progress.start("upload", len(sources))
    records = upload_all(sources, dataset, bucket, report, progress)
    entries = to_entries(records, report)
    progress.start("send", len(entries))
    send_failures = sender.send(entries, progress)
    report.failures.extend(send_failures)
    report.sent = len(entries) - len(send_failures)
    if report.failures or not report.sent:
        logger.warning("commit not sent", extra={"dataset": dataset, "failures": len(report.failures)})
        return report
    commit = CommitRecord(event_id=str(uuid.uuid4()), dataset=dataset, count=report.sent,
                          sent_at=datetime.now(timezone.utc))
    commit_failures = sender.send([Entry("commit", encode_record(commit), dataset)])
    report.failures.extend(commit_failures)
    report.commit_event_id = None if commit_failures else commit.event_id
    return report
