"""One delivered record, start to end: validate, then ledger or quarantine, then count it.

Runs under the idempotency guard (app.py), and every step is itself repeatable (write-once
objects, counted-once markers), so a retry after a transient failure finishes the job without
doubling anything.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from lambdas.shared.schemas import CommitRecord, RecordingRecord, encode_record, is_safe_name, parse_record
from lambdas.trigger import ledger, state, validation
from lambdas.trigger.errors import RecordRejected
from lambdas.trigger.events import Delivery
from lambdas.trigger.settings import TriggerSettings

logger = logging.getLogger(__name__)

LEDGER, QUARANTINE, COMMIT_PENDING, COMMIT_DUPLICATE = "ledger", "quarantine", "commit_pending", "commit_duplicate"


@dataclass(frozen=True)
class Outcome:
    """Where a record went; JSON-ready (the idempotency layer stores it for re-deliveries)."""

    record_id: str
    outcome: str
    dataset: str | None = None
    kind: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def attribution(data: bytes, record_id: str) -> tuple[str, str] | None:
    """(dataset, unit) a rejected recording still counts for, when it names its dataset."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("type") != "recording" or not is_safe_name(value.get("dataset")):
        return None
    recording_id = value.get("recording_id")
    unit = f"rec#{recording_id}" if is_safe_name(recording_id) else f"evt#{record_id}"
    return value["dataset"], unit


def quarantine(delivery: Delivery, rejection: RecordRejected, settings: TriggerSettings) -> Outcome:
    ledger.write_quarantined(
        settings.bucket, delivery.record_id, delivery.data, delivery.arrived_at,
        reason=rejection.reason, detail=rejection.detail, field=rejection.field,
    )
    target = attribution(delivery.data, delivery.record_id)
    if target:
        state.count_unit(settings.state_table, target[0], target[1], event_id=delivery.record_id,
                         labelled_accepted=False)
    logger.info("record quarantined", extra={"record_id": delivery.record_id, "reason": rejection.reason})
    return Outcome(delivery.record_id, QUARANTINE, dataset=target[0] if target else None, reason=rejection.reason)


def accept_recording(record: RecordingRecord, settings: TriggerSettings) -> Outcome:
    ledger.write_accepted(settings.bucket, record)
    state.count_unit(settings.state_table, record.dataset, f"rec#{record.recording_id}",
                     event_id=record.event_id, labelled_accepted=record.labelled)
    logger.info("record accepted", extra={"record_id": record.event_id, "dataset": record.dataset})
    return Outcome(record.event_id, LEDGER, dataset=record.dataset, kind="recording")


def quarantine_commit(settings: TriggerSettings, commit_record: str, reason: str, detail: str) -> None:
    """A commit that will not start a run ends in quarantine, keyed by its event id like any record."""
    commit = parse_record(commit_record)
    ledger.write_quarantined(settings.bucket, commit.event_id, commit_record.encode(), commit.sent_at,
                             reason=reason, detail=detail)
    logger.info("commit quarantined", extra={"record_id": commit.event_id, "reason": reason})


def accept_commit(commit: CommitRecord, settings: TriggerSettings, now: datetime) -> Outcome:
    """Hold the commit as the dataset's pending one (its line is written when it settles)."""
    current = state.get_state(settings.state_table, commit.dataset)
    replaces = current.commit_event_id if current else None
    if current and current.commit_state == state.PENDING and replaces != commit.event_id and current.commit_record:
        # Written before the state changes: a retry after a failure here still finds the old commit.
        quarantine_commit(settings, current.commit_record, state.SUPERSEDED,
                          f"a newer commit {commit.event_id} arrived before this one completed")
    registered = state.register_commit(
        settings.state_table, commit.dataset, commit.event_id, commit.count, encode_record(commit).decode(),
        int(now.timestamp()), replaces,
    )
    logger.info("commit received", extra={"record_id": commit.event_id, "dataset": commit.dataset,
                                          "count": commit.count, "new": registered})
    return Outcome(commit.event_id, COMMIT_PENDING if registered else COMMIT_DUPLICATE,
                   dataset=commit.dataset, kind="commit")


def take_in(delivery: Delivery, settings: TriggerSettings, now: datetime | None = None) -> Outcome:
    """The whole per-record path; permanent problems end in quarantine, transient ones raise."""
    try:
        record = validation.validate(delivery.data, settings.bucket)
    except RecordRejected as rejection:
        return quarantine(delivery, rejection, settings)
    if isinstance(record, CommitRecord):
        return accept_commit(record, settings, now or datetime.now(timezone.utc))
    return accept_recording(record, settings)
