"""`samay pipeline`: the SageMaker pipeline: definition, upsert, run, status.

`definition` and `upsert` build the pipeline from this checkout's code (`pipelines.pipeline`);
`run` and `status` talk to SageMaker about the pipeline already upserted there. All four use the
standard AWS variables, so they work against AWS and, with `samay local env`, the local cloud.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from lambdas.shared import aws
from lambdas.shared.config import Settings
from pipelines.cli._common import console, err_console, fail

group = typer.Typer(help="The SageMaker pipeline: definition, upsert, run, status.", no_args_is_help=True)

TERMINAL = {"Succeeded", "Failed", "Stopped"}
STATUS_STYLE = {"Succeeded": "green", "Failed": "red", "Stopped": "yellow", "Executing": "cyan", "Starting": "cyan"}

RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION).")]
BucketOpt = Annotated[str | None, typer.Option("--bucket", help="Bucket for code and outputs (default: SAMAY_BUCKET).")]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", help="SageMaker execution role ARN (default: samay-sagemaker-execution in your account)."),
]
NameOpt = Annotated[str | None, typer.Option("--name", help="Pipeline name (default: SAMAY_PIPELINE_NAME or PredictionsSamayPipeline).")]


@group.command("definition")
def definition(region: RegionOpt = None, bucket: BucketOpt = None, role: RoleOpt = None, name: NameOpt = None) -> None:
    """Print the pipeline definition JSON (uploads the step code to the bucket, as the SDK does)."""
    pipeline, _ = _build(region, bucket, role, name)
    with _aws_errors():
        text = pipeline.definition()
    typer.echo(json.dumps(json.loads(text), indent=2))


@group.command("upsert")
def upsert(role: RoleOpt = None, region: RegionOpt = None, bucket: BucketOpt = None, name: NameOpt = None) -> None:
    """Create or update the pipeline in SageMaker from this checkout's code."""
    pipeline, role_arn = _build(region, bucket, role, name)
    with _aws_errors():
        response = pipeline.upsert(role_arn=role_arn)
    console.print(f"[green]upserted[/] {pipeline.name}: {response['PipelineArn']}")


@group.command("run")
def run(
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Parameter override Name=Value (repeatable).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the steps until the execution ends.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.2, help="Seconds between status polls with --wait.")] = 5.0,
    region: RegionOpt = None,
    name: NameOpt = None,
) -> None:
    """Start an execution of the upserted pipeline; with --wait, exit non-zero unless it succeeds."""
    pipeline_name = name or Settings.from_env().pipeline_name
    overrides = parse_params(param or [])
    sm = aws.client("sagemaker", region)
    with _aws_errors():
        known = pipeline_parameters(sm, pipeline_name)
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            fail(f"unknown parameter(s) {', '.join(unknown)}; {pipeline_name} takes: {', '.join(known)}")
        arn = sm.start_pipeline_execution(
            PipelineName=pipeline_name,
            PipelineParameters=[{"Name": key, "Value": value} for key, value in overrides.items()],
        )["PipelineExecutionArn"]
        console.print(f"started {arn}")
        if wait:
            execution = follow(sm, arn, poll)
            if execution["PipelineExecutionStatus"] != "Succeeded":
                fail(failure_summary(sm, execution))
            console.print(f"[green]Succeeded[/] {arn}")


@group.command("status")
def status(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many recent executions to list.")] = 5,
    region: RegionOpt = None,
    name: NameOpt = None,
) -> None:
    """List the latest executions, and the steps of the most recent one."""
    pipeline_name = name or Settings.from_env().pipeline_name
    sm = aws.client("sagemaker", region)
    with _aws_errors():
        summaries = sm.list_pipeline_executions(
            PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit
        )["PipelineExecutionSummaries"]
        if not summaries:
            console.print(f"{pipeline_name} has no executions yet (start one with `samay pipeline run`).")
            return
        console.print(executions_table(pipeline_name, summaries))
        console.print(steps_table(summaries[0]["PipelineExecutionArn"], execution_steps(sm, summaries[0]["PipelineExecutionArn"])))


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`["Epochs=5", "AccuracyThreshold=0.8"]` -> {"Epochs": "5", ...}; a malformed pair is a clear error."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--param expects Name=Value, got {pair!r}")
        parsed[key.strip()] = value
    return parsed


def pipeline_parameters(sm: Any, pipeline_name: str) -> list[str]:
    """Names of the parameters the upserted definition declares."""
    from botocore.exceptions import ClientError

    try:
        described = sm.describe_pipeline(PipelineName=pipeline_name)
    except ClientError as err:
        if "could not find pipeline" in err.response.get("Error", {}).get("Message", "").lower():
            fail(f"pipeline {pipeline_name} does not exist in SageMaker yet: run `samay pipeline upsert` first")
        raise
    return [parameter["Name"] for parameter in json.loads(described["PipelineDefinition"]).get("Parameters", [])]


def execution_steps(sm: Any, execution_arn: str) -> list[dict[str, Any]]:
    pages = sm.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    )
    return [step for page in pages for step in page["PipelineExecutionSteps"]]


def follow(sm: Any, execution_arn: str, poll: float) -> dict[str, Any]:
    """Show the steps live until the execution reaches a terminal status; returns its description."""
    from rich.live import Live

    with Live(console=err_console, refresh_per_second=4, transient=False) as live:
        while True:
            execution = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            live.update(steps_table(execution_arn, execution_steps(sm, execution_arn), execution["PipelineExecutionStatus"]))
            if execution["PipelineExecutionStatus"] in TERMINAL:
                return execution
            time.sleep(poll)


def failure_summary(sm: Any, execution: dict[str, Any]) -> str:
    """The execution's reason and each failed step's own reason (a Fail step's message included)."""
    arn = execution["PipelineExecutionArn"]
    lines = [f"execution {arn} {execution['PipelineExecutionStatus']}: {execution.get('FailureReason', 'no reason given')}"]
    for step in execution_steps(sm, arn):
        if step.get("StepStatus") == "Failed":
            message = step.get("Metadata", {}).get("Fail", {}).get("ErrorMessage") or step.get("FailureReason", "")
            lines.append(f"  step {step['StepName']}: {message}")
    return "\n".join(lines)


def executions_table(pipeline_name: str, summaries: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{pipeline_name}: latest executions")
    for column in ("execution", "status", "started", "display name"):
        table.add_column(column)
    for summary in summaries:
        state = summary.get("PipelineExecutionStatus", "?")
        table.add_row(
            summary["PipelineExecutionArn"].rsplit("/", 1)[-1],
            _styled(state),
            _when(summary.get("StartTime")),
            summary.get("PipelineExecutionDisplayName", ""),
        )
    return table


def steps_table(execution_arn: str, steps: list[dict[str, Any]], execution_status: str | None = None) -> Table:
    title = f"steps of {execution_arn.rsplit('/', 1)[-1]}" + (f" ({execution_status})" if execution_status else "")
    table = Table(title=title)
    for column in ("step", "type", "status", "started", "ended", "reason"):
        table.add_column(column)
    for step in steps:
        table.add_row(
            step["StepName"],
            _step_type(step),
            _styled(step.get("StepStatus", "?")),
            _when(step.get("StartTime")),
            _when(step.get("EndTime")),
            step.get("FailureReason", ""),
        )
    return table


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if hasattr(moment, "strftime") else ""


def _step_type(step: dict[str, Any]) -> str:
    metadata = step.get("Metadata", {})
    return next(iter(metadata), "") if isinstance(metadata, dict) else ""


def _styled(state: str) -> str:
    style = STATUS_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def _build(region: str | None, bucket: str | None, role: str | None, name: str | None) -> tuple[Any, str]:
    """(pipeline, execution role) with the CLI's defaults; the SDK is imported here so `samay --help` stays fast."""
    settings = Settings.from_env()
    _quiet_sdk_logs()
    from pipelines.pipeline import default_role, get_pipeline, pipeline_session

    region = region or settings.region
    with _aws_errors():
        session = pipeline_session(region, bucket or settings.bucket)
        role = role or default_role(session)
        pipeline = get_pipeline(
            region=region, role=role, pipeline_name=name or settings.pipeline_name, sagemaker_session=session
        )
    return pipeline, role


def _quiet_sdk_logs() -> None:
    """Keep the SDK's warnings only: on import it logs config lookups to *stdout* ("sagemaker.config",
    unless a level is already set) and turns on root INFO logging, which would bury `definition`'s JSON."""
    for name in ("sagemaker.config", "sagemaker", "botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Notices about how pipelines work, not about this pipeline: instance-type parameters only size
    # the jobs (images are pinned), and a PipelineSession by design starts no job and updates no Lambda.
    for name in ("sagemaker.workflow.utilities", "sagemaker.workflow._utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    warnings.filterwarnings("ignore", message="Lambda function won't be updated")


@contextmanager
def _aws_errors() -> Iterator[None]:
    """AWS refusals and unreachable endpoints become one clear line; anything else keeps its traceback."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        fail(f"{err.operation_name} refused: {error.get('Code', 'Error')}: {error.get('Message', err)}")
    except EndpointConnectionError as err:
        fail(f"cannot reach {err.kwargs.get('endpoint_url', 'the AWS endpoint')}: is the local cloud up "
             "(`samay local up`, then `eval \"$(samay local env)\"`) or are you online?")
    except (NoCredentialsError, NoRegionError) as err:
        fail(f"{err} (set AWS credentials and AWS_DEFAULT_REGION, or `eval \"$(samay local env)\"`)")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="pipeline")
