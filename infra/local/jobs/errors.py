"""The one error a job run ends with when it does not complete."""
from __future__ import annotations


class JobFailed(RuntimeError):
    """A processing or training job failed; `reason` is what DescribeXJob reports as FailureReason.

    SageMaker keeps FailureReason under 1 KB and prefixes who is to blame: `ClientError` for a bad
    request or missing input, `AlgorithmError` for a container that exited non-zero.
    """

    MAX_REASON = 1024

    def __init__(self, reason: str) -> None:
        self.reason = reason if len(reason) <= self.MAX_REASON else reason[: self.MAX_REASON - 3] + "..."
        super().__init__(self.reason)


class JobStopped(JobFailed):
    """The job was stopped on request (StopProcessingJob, StopTrainingJob, StopPipelineExecution)."""

    def __init__(self) -> None:
        super().__init__("Stopped: the job was stopped on request before it completed")
