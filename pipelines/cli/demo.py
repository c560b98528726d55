"""`samay demo`: the main job, end to end on the local cloud, with progress and a summary."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pipelines.cli._common import console, fail

STATUS_STYLE = {"Succeeded": "green", "Failed": "red", "Executing": "yellow", "Starting": "yellow"}


class RichReporter:
    def __init__(self) -> None:
        self._started = time.perf_counter()

    def stage(self, title: str) -> None:
        console.rule(f"[bold]{title}[/] [dim]+{time.perf_counter() - self._started:.0f}s[/]")

    def info(self, message: str) -> None:
        console.print(f"  {message}", highlight=False)

    def steps(self, steps: list[dict[str, Any]]) -> None:
        line = "  ".join(
            f"[{STATUS_STYLE.get(s['StepStatus'], 'white')}]{s['StepName']}:{s['StepStatus']}[/]" for s in steps
        )
        console.print(f"  {line}")


def _start_cloud(state_dir: Path) -> None:
    from infra.local import cloud
    from pipelines.cli.local import upsert_pipeline

    record, started = cloud.start(state_dir, progress=lambda message: console.print(f"  {message}", highlight=False))
    os.environ.update(record.env)
    from lambdas.shared import aws

    aws.client.cache_clear()
    console.print("  started" if started else "  already running")
    upsert_pipeline(record.env)


def _summary(result) -> Table:
    table = Table("", "", title="Samay demo summary", show_header=False)
    table.add_row("pipeline execution", f"{result.execution_arn.rsplit('/', 1)[-1]}: {result.execution_status}")
    table.add_row("trained on", result.input_data_url)
    table.add_row("accuracy vs gate", f"{result.accuracy:.3f} >= {result.threshold:.2f} (majority baseline {result.baseline:.3f})")
    table.add_row("registered model version", f"{result.model_version} ({result.model_package_arn})")
    table.add_row("endpoint", f"samay-lung-sound {result.endpoint_status}")
    ok = sum(1 for p in result.predictions if p.get("status") == "OK")
    table.add_row("predictions stored", f"{len(result.predictions)} in DynamoDB samay-predictions ({ok} OK), one S3 line each under predictions/")
    for p in result.predictions:
        probability = max((p.get("probabilities") or {"-": 0}).values())
        table.add_row(f"  {p['recording_id']}", f"{p.get('predicted_label') or p.get('error')} (p={float(probability):.2f}, weights {p['model_version']})")
    table.add_row("dashboard", result.dashboard)
    table.add_row("stage times (s)", ", ".join(f"{k} {v}" for k, v in result.stage_seconds.items()))
    table.add_row("look around", 'eval "$(samay local env)"; samay pipeline status; samay local status')
    return table


def demo(
    state_dir: Path = typer.Option(Path(".samay"), "--state-dir", envvar="SAMAY_STATE_DIR", help="Local cloud state dir."),
    patients: int = typer.Option(40, help="Synthetic patients to train on."),
    difficulty: str = typer.Option("normal", help="Synthetic difficulty: easy, normal or hard (hard fails the gate)."),
) -> None:
    """The main job: local cloud, synthetic data, push, trigger, pipeline, gate, deploy, score, dashboard."""
    from pipelines.demo import DemoFailed, run

    started = time.perf_counter()
    try:
        result = run(state_dir, RichReporter(), start_cloud=lambda: _start_cloud(state_dir), patients=patients, difficulty=difficulty)
    except DemoFailed as err:
        fail(f"demo failed: {err}")
    console.print(_summary(result))
    console.print(f"[bold green]Demo complete[/] in {time.perf_counter() - started:.0f} s.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
