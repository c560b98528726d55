"""The trigger's named failures.

Permanent problems with a record (`RecordRejected`, `InvalidEvent`) are quarantined and the handler
returns normally; the others are transient or operational and are raised, so Lambda retries the
event and finally hands it to the on-failure destination: nothing is swallowed.
"""
from __future__ import annotations


class RecordRejected(ValueError):
    """A record that can never be accepted; `reason` is the machine-readable quarantine code."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


class InvalidEvent(ValueError):
    """The EventBridge event is not a Kinesis record from the ingest pipe."""


class ObjectCheckFailed(RuntimeError):
    """S3 could not answer whether a record's audio exists or matches (retry)."""


class PipelineStartFailed(RuntimeError):
    """SageMaker refused or failed to start the pipeline (retry, then the on-failure destination)."""
