"""Is a dataset complete? Then write the manifest and start the pipeline, once.

Called after every record of a known dataset (duplicates included: it is cheap and idempotent),
so whichever record arrives last — the commit or the recording that completes the set — does
the start. The same call expires a pending commit that waited longer than the timeout, and, if
configured, starts a run without a commit once enough new labelled recordings arrived.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from lambdas.shared.schemas import parse_record
from lambdas.trigger import intake, ledger, manifest, starter, state
from lambdas.trigger.settings import TriggerSettings

logger = logging.getLogger(__name__)

COMMIT_INCOMPLETE = "commit_incomplete"
NO_LABELLED_RECORDINGS = "no_labelled_recordings"


def version_for(dataset: str, commit_event_id: str) -> str:
    """Deterministic: every delivery of one commit names the same manifest folder."""
    return f"{dataset}-{commit_event_id[:8]}"


def auto_commit_id(dataset: str, labelled: int) -> str:
    return "auto-" + hashlib.sha256(f"{dataset}:{labelled}".encode()).hexdigest()[:32]


def advance(dataset: str, settings: TriggerSettings, now: datetime) -> str | None:
    """Move the dataset's commit one step; the execution ARN when this call started (or found) a run."""
    current = state.get_state(settings.state_table, dataset)
    if current is None:
        return None
    moment = int(now.timestamp())
    if current.commit_state == state.PENDING:
        if current.complete:
            return start_for_commit(current, settings, moment)
        if moment - current.commit_received_at > settings.commit_timeout_seconds:
            detail = (f"{current.processed_count} of {current.commit_count} recordings arrived within "
                      f"{settings.commit_timeout_seconds} s")
            settle_failed(current, settings, state.TIMED_OUT, COMMIT_INCOMPLETE, detail)
        return None
    if current.commit_state == state.STARTED and not current.execution_arn:
        return start_for_commit(current, settings, moment)  # a claimed start that did not finish
    if current.commit_state in (state.TIMED_OUT, state.NO_DATA) and not current.commit_settled:
        settle_failed(current, settings, current.commit_state, _reason_of(current.commit_state), "retried")
        return None
    if auto_start_due(current, settings):
        return auto_start(current, settings, moment)
    return None


def _reason_of(commit_state: str) -> str:
    return COMMIT_INCOMPLETE if commit_state == state.TIMED_OUT else NO_LABELLED_RECORDINGS


def settle_failed(current: state.DatasetState, settings: TriggerSettings, new_state: str, reason: str,
                  detail: str) -> None:
    """The commit ends in quarantine with `reason`; the state change first, so only one caller does it."""
    if current.commit_state != new_state and not state.give_up(
        settings.state_table, current.dataset, current.commit_event_id, new_state, reason
    ):
        return
    if current.commit_record:
        intake.quarantine_commit(settings, current.commit_record, reason, detail)
    state.mark_settled(settings.state_table, current.dataset, current.commit_event_id)


def start_for_commit(current: state.DatasetState, settings: TriggerSettings, moment: int) -> str | None:
    version = current.version or version_for(current.dataset, current.commit_event_id)
    if not state.claim_start(settings.state_table, current, version, moment):
        return None  # another delivery claimed it
    return launch(current, settings, version)


def auto_start_due(current: state.DatasetState, settings: TriggerSettings) -> bool:
    threshold = settings.auto_commit_min_recordings
    return threshold > 0 and current.labelled_accepted - (current.labelled_at_start or 0) >= threshold


def auto_start(current: state.DatasetState, settings: TriggerSettings, moment: int) -> str | None:
    event_id = auto_commit_id(current.dataset, current.labelled_accepted)
    version = f"{current.dataset}-auto-{current.labelled_accepted}"
    if not state.claim_auto_start(settings.state_table, current, event_id, version, moment):
        return None
    logger.info("auto-commit", extra={"dataset": current.dataset, "labelled": current.labelled_accepted})
    claimed = state.DatasetState(dataset=current.dataset, commit_event_id=event_id, commit_state=state.STARTED,
                                 version=version, processed_count=current.processed_count)
    return launch(claimed, settings, version)


def launch(claimed: state.DatasetState, settings: TriggerSettings, version: str) -> str | None:
    """Manifest from the whole ledger, then the start, then the commit's ledger line."""
    built = manifest.build_manifest(ledger.read_recordings(settings.bucket))
    if not built.rows:
        settle_failed(claimed, settings, state.NO_DATA, NO_LABELLED_RECORDINGS,
                      "the ledger holds no accepted labelled recordings")
        return None
    uri = manifest.write_manifest(settings.bucket, version, built)
    arn = starter.start_pipeline(
        settings.pipeline_name, uri, claimed.commit_event_id,
        f"dataset {claimed.dataset}, commit {claimed.commit_event_id}, {len(built.rows)} recordings",
    )
    if claimed.commit_record:
        ledger.write_accepted(settings.bucket, parse_record(claimed.commit_record))
    state.record_started(settings.state_table, claimed.dataset, claimed.commit_event_id, uri, arn)
    logger.info("pipeline started", extra={"dataset": claimed.dataset, "version": version,
                                           "recordings": len(built.rows), "excluded": len(built.excluded)})
    return arn
