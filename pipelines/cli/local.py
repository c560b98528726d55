"""`samay local`: start, stop and inspect the local cloud (moto + local SageMaker + event router).

`up` starts the processes (infra.local.cloud), provisions the stack's resources, and then upserts
the pipeline through the SageMaker SDK exactly as a user would, with the environment pointing at
the local cloud. `eval "$(samay local env)"` points a shell, boto3, the SDK and the AWS CLI at it.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import typer
from rich.table import Table

from pipelines.cli._common import console, err_console, fail

group = typer.Typer(help="Start, stop and inspect the local cloud (moto + local SageMaker).", no_args_is_help=True)

STATE_DIR_OPTION = typer.Option(
    Path(".samay"), "--state-dir", envvar="SAMAY_STATE_DIR",
    help="Where the local cloud keeps its processes' record, logs and data.",
)


def _say(message: str) -> None:
    console.print(f"  {message}", highlight=False)


@group.command("up")
def up(
    state_dir: Path = STATE_DIR_OPTION,
    no_pipeline: bool = typer.Option(False, "--no-pipeline", help="Do not upsert the pipeline after starting."),
) -> None:
    """Start the local cloud in the background (idempotent) and upsert the pipeline."""
    from infra.local import cloud

    with console.status("Starting the local cloud...") as spinner:
        def progress(message: str) -> None:
            _say(message)
            spinner.update(message)

        try:
            record, started = cloud.start(state_dir, progress=progress)
        except cloud.CloudError as err:
            fail(str(err))
        if not started:
            console.print(f"The local cloud is already running (state dir {state_dir.resolve()}).")
            return
        if not no_pipeline:
            spinner.update("Upserting the pipeline through the SageMaker SDK...")
            upsert_pipeline(record.env)
    console.print(f"[bold green]Local cloud up[/] (state dir {state_dir.resolve()}). "
                  'Point a shell at it with: eval "$(samay local env)"')


def upsert_pipeline(env: Mapping[str, str]) -> None:
    """`get_pipeline(...).upsert(role_arn=...)` against the local SageMaker service, as a user would."""
    os.environ.update(env)
    from lambdas.shared import aws, config

    aws.client.cache_clear()
    try:
        from pipelines.pipeline import get_pipeline
    except ModuleNotFoundError as err:
        if err.name != "pipelines.pipeline":
            raise
        console.print("[yellow]note:[/] pipelines.pipeline is not built yet; the pipeline was not upserted.")
        return
    from infra.local.provision import ROLE_ARN

    pipeline = get_pipeline(region=env["AWS_DEFAULT_REGION"], role=ROLE_ARN, default_bucket=env["SAMAY_BUCKET"],
                            pipeline_name=config.PIPELINE_NAME)
    response = pipeline.upsert(role_arn=ROLE_ARN)
    _say(f"pipeline {config.PIPELINE_NAME} upserted ({response['PipelineArn']})")


@group.command("down")
def down(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Stop every process `up` started (by PID); the data stays for the next `up`."""
    from infra.local import cloud

    try:
        stopped = cloud.stop(state_dir, progress=_say)
    except cloud.CloudError as err:
        fail(str(err))
    console.print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")


@group.command("status")
def status(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Show which component runs where, and what the local cloud holds. Exits 1 when it is not (fully) up."""
    from infra.local import cloud

    components = cloud.status(state_dir)
    if not components:
        err_console.print(f"The local cloud is not running (state dir {state_dir.resolve()}).")
        raise typer.Exit(1)
    table = Table("component", "pid", "url", "alive", "log", title="Local cloud")
    for c in components:
        table.add_row(c.name, str(c.pid), c.url, "[green]yes[/]" if c.alive else "[red]no[/]", c.log)
    console.print(table)
    if not all(c.alive for c in components):
        err_console.print("Some components are down: run `samay local down` then `samay local up`.")
        raise typer.Exit(1)
    resources = Table("resource", "count", title="Resources")
    for name, count in cloud.inventory(cloud.read_env(state_dir)).items():
        resources.add_row(name, str(count))
    console.print(resources)


@group.command("env")
def env(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Print `export NAME=value` lines for the running local cloud: eval "$(samay local env)"."""
    from infra.local import cloud

    try:
        variables = cloud.read_env(state_dir)
    except cloud.CloudError as err:
        fail(str(err))
    for name, value in variables.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="local")
