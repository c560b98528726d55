"""Processing and training jobs: the records the executor keeps while H4c's job runner works.

Both kinds share one shape (name, ARN, status, start/end times), so one table of field names
describes each and the methods below serve both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.local.sagemaker.exceptions import ResourceInUse, ResourceNotFound
from infra.local.sagemaker.models.base import Record, make_arn, name_of, now, page, public, require


@dataclass(frozen=True)
class JobKind:
    resource: str  # the ARN's resource type and the status callback's name
    prefix: str  # "Processing" / "Training": field names are built from it
    summaries_key: str

    def field(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"


PROCESSING = JobKind("processing-job", "Processing", "ProcessingJobSummaries")
TRAINING = JobKind("training-job", "Training", "TrainingJobSummaries")
_SUMMARY_SUFFIXES = ("JobName", "JobArn", "JobStatus", "EndTime")
_SECONDARY_STATUS = {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped"}


class JobsMixin:
    """State of ProcessingJob and TrainingJob resources; mixed into SageMakerBackend."""

    processing_jobs: dict[str, Record]
    training_jobs: dict[str, Record]

    def describe_processing_job(self, processing_job_name: str) -> Record:
        return self._describe_job(PROCESSING, processing_job_name)

    def describe_training_job(self, training_job_name: str) -> Record:
        return self._describe_job(TRAINING, training_job_name)

    def list_processing_jobs(self, **filters: Any) -> Record:
        return self._list_jobs(PROCESSING, **filters)

    def list_training_jobs(self, **filters: Any) -> Record:
        return self._list_jobs(TRAINING, **filters)

    def record_job(self, kind: JobKind, request: Record) -> Record:
        """Store a job the executor is about to run (status InProgress) from its resolved request."""
        name = request[kind.field("JobName")]
        with self.lock:
            jobs = self._jobs(kind)
            if name.lower() in jobs:  # job names are unique regardless of case (the ARN lower-cases them)
                raise ResourceInUse(f"{kind.prefix} job '{name}' already exists")
            created = now()
            record = {
                **request,
                kind.field("JobArn"): make_arn(self.region, self.account, kind.resource, name),
                kind.field("JobStatus"): "InProgress",
                "CreationTime": created,
                "LastModifiedTime": created,
                kind.field("StartTime"): created,
            }
            if kind is TRAINING:
                record["SecondaryStatus"] = "Starting"
            jobs[name.lower()] = record
            self._save()
        self._notify(kind.field("Job"), record[kind.field("JobArn")], "InProgress")
        return public(record)

    def set_job_status(self, kind: JobKind, name: str, status: str, failure_reason: str | None = None,
                       **results: Any) -> Record:
        """The one place a job's status changes; `results` (e.g. ModelArtifacts) are stored with it."""
        with self.lock:
            record = self._jobs(kind)[name.lower()]
            record.update(results)
            record[kind.field("JobStatus")] = status
            record["LastModifiedTime"] = record[kind.field("EndTime")] = now()
            if kind is TRAINING:
                record["SecondaryStatus"] = _SECONDARY_STATUS.get(status, status)
                record["TrainingTimeInSeconds"] = int(record["TrainingEndTime"] - record["TrainingStartTime"])
            if failure_reason:
                record["FailureReason"] = failure_reason[:1024]
            self._save()
        self._notify(kind.field("Job"), record[kind.field("JobArn")], status)
        return public(record)

    def _describe_job(self, kind: JobKind, name: str) -> Record:
        require(name, f"{kind.prefix[0].lower()}{kind.prefix[1:]}JobName")
        with self.lock:
            record = self._jobs(kind).get(name_of(name).lower())
            if record is None:
                raise ResourceNotFound(f"Could not find requested job with name {name}")
            return public(record)

    def _list_jobs(
        self,
        kind: JobKind,
        name_contains: str | None = None,
        status_equals: str | None = None,
        creation_time_after: float | None = None,
        creation_time_before: float | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        **_ignored: Any,
    ) -> Record:
        fields = [kind.field(suffix) for suffix in _SUMMARY_SUFFIXES] + ["CreationTime", "LastModifiedTime",
                                                                         "FailureReason", "SecondaryStatus"]
        with self.lock:
            rows = [
                {key: record[key] for key in fields if key in record}
                for name, record in self._jobs(kind).items()
                if (name_contains or "").lower() in name
                and status_equals in (None, record[kind.field("JobStatus")])
                and (creation_time_after is None or record["CreationTime"] > float(creation_time_after))
                and (creation_time_before is None or record["CreationTime"] < float(creation_time_before))
            ]
        sort_key = {"Name": kind.field("JobName"), "Status": kind.field("JobStatus")}.get(sort_by or "", "CreationTime")
        return page(rows, kind.summaries_key, max_results=max_results, next_token=next_token,
                    sort_by=sort_key, sort_order=sort_order, default_order="Descending")

    def _jobs(self, kind: JobKind) -> dict[str, Record]:
        return self.processing_jobs if kind is PROCESSING else self.training_jobs
