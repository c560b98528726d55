"""The job runner: SageMaker processing and training jobs as local subprocesses (DESIGN 4.9).

`run_processing_job(request, job_dir, log_path)` and `run_training_job(request, job_dir, log_path)`
take a Create*Job request whose values are all resolved, run it to completion under the container
contract (see `contract`), and return the job's Describe fields; a failure raises `JobFailed`, and
setting the optional `stop` event ends the job's processes and raises `JobStopped` (a JobFailed).
"""
from infra.local.jobs.errors import JobFailed, JobStopped
from infra.local.jobs.processing import run_processing_job
from infra.local.jobs.training import run_training_job

__all__ = ["JobFailed", "JobStopped", "run_processing_job", "run_training_job"]
