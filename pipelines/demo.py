"""`samay demo`: the whole system end to end on the local cloud, every claim read back from state.

Stages: local cloud up -> synthetic dataset -> push (S3 + Kinesis) -> the trigger starts the
pipeline -> follow its steps -> the gate's decision -> the endpoint serving the new model -> score
new recordings uploaded to S3 -> summary and dashboard. Each stage is timed; a stage that fails
raises DemoFailed with what went wrong, and the CLI exits non-zero.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from lambdas.shared import aws
from lambdas.shared.config import Settings

logger = logging.getLogger(__name__)

TERMINAL = {"Succeeded", "Failed", "Stopped"}


class DemoFailed(RuntimeError):
    """A stage did not reach the state it waits for; the message says which and what was seen."""


@dataclass
class DemoResult:
    execution_arn: str = ""
    execution_status: str = ""
    input_data_url: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    accuracy: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    gate_passed: bool | None = None
    model_package_arn: str = ""
    model_version: str = ""
    endpoint_status: str = ""
    predictions: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    dashboard: str = ""


@contextmanager
def timed(result: DemoResult, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        result.stage_seconds[stage] = round(time.perf_counter() - start, 2)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy; DemoFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def execution_arns(pipeline: str) -> set[str]:
    summaries = aws.client("sagemaker").list_pipeline_executions(PipelineName=pipeline, MaxResults=100)
    return {s["PipelineExecutionArn"] for s in summaries["PipelineExecutionSummaries"]}


def new_execution(pipeline: str, before: set[str]) -> str | None:
    fresh = execution_arns(pipeline) - before
    return next(iter(sorted(fresh)), None)


def parameters_of(execution_arn: str) -> dict[str, str]:
    response = aws.client("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)
    return {p["Name"]: p["Value"] for p in response["PipelineParameters"]}


def execution_steps(execution_arn: str) -> list[dict[str, Any]]:
    steps = aws.client("sagemaker").list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)["PipelineExecutionSteps"]
    return sorted(steps, key=lambda s: s.get("StartTime", 0))


def execution_status(execution_arn: str) -> dict[str, Any]:
    return aws.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=execution_arn)


def read_s3_json(uri: str) -> dict[str, Any]:
    parsed = urlparse(uri)
    body = aws.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    return json.loads(body)


def evaluation_report(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """evaluation.json of the Evaluate step's processing job, read from S3."""
    evaluate = next((s for s in steps if s["StepName"] == "Evaluate" and s["StepStatus"] == "Succeeded"), None)
    if evaluate is None:
        return None
    job_name = evaluate["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1]
    job = aws.client("sagemaker").describe_processing_job(ProcessingJobName=job_name)
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in job["ProcessingOutputConfig"]["Outputs"]}
    return read_s3_json(outputs["evaluation"].rstrip("/") + "/evaluation.json")


def endpoint_model_package(endpoint: str) -> tuple[str, str | None]:
    """(endpoint status, model package ARN in service) read from the endpoint's config and model."""
    sagemaker = aws.client("sagemaker")
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return "Missing", None
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
    return described["EndpointStatus"], containers[0].get("ModelPackageName")


def upload_for_scoring(folder: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every WAV of a synthetic folder to inference/incoming/ with its patient as metadata."""
    import csv

    s3 = aws.client("s3")
    recording_ids = []
    with (folder / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            recording_id = f"{prefix}-{row['recording_id']}"
            metadata = {k: row[k] for k in ("patient_id", "location", "device") if row.get(k)}
            s3.put_object(
                Bucket=bucket,
                Key=f"inference/incoming/{recording_id}.wav",
                Body=(folder / row["file"]).read_bytes(),
                ContentType="audio/wav",
                Metadata=metadata,
            )
            recording_ids.append(recording_id)
    return recording_ids


def stored_predictions(table: str, recording_ids: list[str]) -> list[dict[str, Any]]:
    from lambdas.shared.predictions import predictions_for

    return [p.model_dump() for recording_id in recording_ids for p in predictions_for(table, recording_id)]


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


class Reporter(Protocol):
    """How the demo talks to the user (the CLI passes a rich-backed one; tests a silent one)."""

    def stage(self, title: str) -> None: ...

    def info(self, message: str) -> None: ...

    def steps(self, steps: list[dict[str, Any]]) -> None: ...


def _follow(result: DemoResult, reporter: Reporter, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while True:
        steps = execution_steps(result.execution_arn)
        snapshot = {s["StepName"]: s["StepStatus"] for s in steps}
        if snapshot != seen:
            reporter.steps(steps)
            seen = snapshot
        status = execution_status(result.execution_arn)["PipelineExecutionStatus"]
        if status in TERMINAL:
            result.execution_status, result.steps = status, execution_steps(result.execution_arn)
            return
        if time.monotonic() > deadline:
            raise DemoFailed(f"pipeline execution still {status} after {timeout:.0f} s")
        time.sleep(1.0)


def _gate(result: DemoResult, reporter: Reporter) -> None:
    report = evaluation_report(result.steps)
    result.threshold = float(parameters_of(result.execution_arn).get("AccuracyThreshold", "nan"))
    if report is not None:
        result.accuracy = report["multiclass_classification_metrics"]["accuracy"]["value"]
        result.baseline = report["baseline"]["accuracy"]
    condition = next((s for s in result.steps if s["StepName"] == "CheckAccuracy"), None)
    outcome = (condition or {}).get("Metadata", {}).get("Condition", {}).get("Outcome")
    result.gate_passed = outcome == "True"
    reporter.info(
        f"gate: accuracy {result.accuracy} vs threshold {result.threshold} "
        f"(majority baseline {result.baseline}) -> {'PASS' if result.gate_passed else 'FAIL'}"
    )
    if result.execution_status != "Succeeded":
        failed = [s for s in result.steps if s["StepStatus"] == "Failed"]
        reasons = "; ".join(f"{s['StepName']}: {s.get('FailureReason', '')}" for s in failed)
        raise DemoFailed(f"pipeline execution {result.execution_status}: {reasons or execution_status(result.execution_arn).get('FailureReason', '')}")


def _deployed(result: DemoResult, settings: Settings, reporter: Reporter, timeout: float) -> None:
    register = next((s for s in result.steps if s["StepName"].startswith("RegisterModel")), None)
    if register is None:
        raise DemoFailed("the execution succeeded but has no RegisterModel step")
    result.model_package_arn = register["Metadata"]["RegisterModel"]["Arn"]
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=result.model_package_arn)
    result.model_version = str(package["ModelPackageVersion"])
    reporter.info(f"registered {result.model_package_arn} ({package['ModelApprovalStatus']})")

    def serving() -> bool:
        status, arn = endpoint_model_package(settings.endpoint_name)
        if status == "Failed":
            raise DemoFailed(f"endpoint {settings.endpoint_name} Failed: {aws.client('sagemaker').describe_endpoint(EndpointName=settings.endpoint_name).get('FailureReason')}")
        return status == "InService" and arn == result.model_package_arn

    wait_for(f"endpoint {settings.endpoint_name} to serve model version {result.model_version}", serving, timeout)
    result.endpoint_status = endpoint_model_package(settings.endpoint_name)[0]
    reporter.info(f"endpoint {settings.endpoint_name} {result.endpoint_status} with model version {result.model_version}")


def run(
    state_dir: Path,
    reporter: Reporter,
    *,
    start_cloud: Callable[[], None],
    patients: int = 40,
    difficulty: str = "normal",
    score_patients: int = 2,
    timeout: float = 900.0,
) -> DemoResult:
    """Run every stage against the local cloud that `start_cloud` brings up (idempotent)."""
    from pipelines import producer
    from pipelines.cli.dashboard import write_dashboard
    from steps.synth import synthesize_dataset

    result, tag = DemoResult(), run_id()
    work = state_dir / "demo"
    with timed(result, "local cloud up"):
        reporter.stage("Local cloud")
        start_cloud()
    settings = Settings.from_env()
    with timed(result, "synthetic dataset"):
        reporter.stage("Synthetic dataset")
        summary = synthesize_dataset(work / "train", patients=patients, seed=42, difficulty=difficulty, overwrite=True)
        reporter.info(f"{summary.recordings} recordings of {summary.patients} patients ({summary.audio_seconds:.0f} s of audio) in {summary.out}")
    with timed(result, "push to Kinesis"):
        reporter.stage("Push: S3 raw/audio/ + Kinesis samay-ingest")
        before = execution_arns(settings.pipeline_name)
        report = producer.push(work / "train", dataset="demo", bucket=settings.bucket, stream=settings.stream_name)
        if not report.ok:
            raise DemoFailed(f"push failed: {[(f.item, f.reason) for f in report.failures][:5]}")
        reporter.info(f"sent {report.sent} recording records + commit {report.commit_event_id}")
    with timed(result, "trigger starts the pipeline"):
        reporter.stage("Trigger Lambda: ledger, manifest, StartPipelineExecution")
        result.execution_arn = wait_for("the trigger to start a pipeline execution", lambda: new_execution(settings.pipeline_name, before), 180)
        result.input_data_url = parameters_of(result.execution_arn)["InputDataUrl"]
        reporter.info(f"execution {result.execution_arn.rsplit('/', 1)[-1]} on {result.input_data_url}")
    with timed(result, "pipeline execution"):
        reporter.stage(f"Pipeline {settings.pipeline_name}")
        _follow(result, reporter, timeout)
    reporter.stage("Accuracy gate")
    _gate(result, reporter)
    with timed(result, "endpoint serves the new model"):
        reporter.stage(f"Endpoint {settings.endpoint_name}")
        _deployed(result, settings, reporter, timeout=300)
    with timed(result, "score new recordings"):
        reporter.stage("Inference: S3 inference/incoming/ -> Lambda -> endpoint -> DynamoDB + S3")
        fresh = synthesize_dataset(work / f"score-{tag}", patients=score_patients, seed=int(time.time()) % 100_000, unlabelled=True)
        recording_ids = upload_for_scoring(fresh.out, settings.bucket, f"demo-{tag}")
        reporter.info(f"uploaded {len(recording_ids)} recordings; waiting for their predictions")
        result.predictions = wait_for(
            f"{len(recording_ids)} predictions in {settings.predictions_table}",
            lambda: (found := stored_predictions(settings.predictions_table, recording_ids)) and len({p["recording_id"] for p in found}) == len(recording_ids) and found,
            timeout=180,
        )
    with timed(result, "dashboard"):
        result.dashboard = str(write_dashboard(state_dir / "dashboard.html").resolve())
    (state_dir / "demo-timings.json").write_text(json.dumps(result.stage_seconds, indent=2))
    return result
