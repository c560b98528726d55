"""`samay push`: upload a dataset folder to S3 and send its records to Kinesis."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lambdas.shared.config import Settings
from pipelines.cli._common import console, fail

if TYPE_CHECKING:  # the producer (boto3) loads inside the command, so `samay --help` stays fast
    from pipelines.producer import PushReport

_PHASES = {"upload": "Uploading audio", "send": "Sending records"}


class RichProgress:
    """The producer's progress hooks drawn as rich bars, one per phase."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, int] = {}

    def start(self, phase: str, total: int) -> None:
        self._tasks[phase] = self._progress.add_task(_PHASES.get(phase, phase), total=total)

    def advance(self, phase: str, amount: int = 1) -> None:
        if phase in self._tasks:
            self._progress.advance(self._tasks[phase], amount)


def summary_table(report: PushReport, bucket: str, stream: str) -> Table:
    table = Table(title=f"samay push: dataset {report.dataset}", show_header=False)
    for name, value in (
        ("recordings in labels.csv", report.found),
        ("audio uploaded", report.uploaded),
        ("audio skipped (same sha256)", report.skipped_uploads),
        ("records sent", report.sent),
        ("failed", len(report.failures)),
        ("commit", report.commit_event_id or "not sent"),
        ("bucket / stream", f"s3://{bucket}/raw/audio/{report.dataset}/  ->  {stream}"),
    ):
        table.add_row(name, str(value))
    return table


def failures_table(report: PushReport) -> Table:
    table = Table(title="failures")
    for column in ("recording", "stage", "reason"):
        table.add_column(column)
    for failure in report.failures:
        table.add_row(failure.item, failure.stage, failure.reason)
    return table


def push(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, dir_okay=True, metavar="DIR",
                                  help="Dataset folder with labels.csv."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (default: the folder's name)."),
    bucket: str = typer.Option(None, "--bucket", help="S3 bucket (default: $SAMAY_BUCKET or samay-local)."),
    stream: str = typer.Option(None, "--stream", help="Kinesis stream (default: $SAMAY_STREAM or samay-ingest)."),
) -> None:
    """Upload a dataset folder's WAVs to S3 raw/audio/ and send one Kinesis record per recording, then a commit."""
    from pipelines import producer

    settings = Settings.from_env()
    bucket, stream = bucket or settings.bucket, stream or settings.stream_name
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as bars:
            report = producer.push(folder, dataset=dataset, bucket=bucket, stream=stream, progress=RichProgress(bars))
    except (producer.DatasetError, producer.StorageUnavailable, producer.StreamUnavailable) as err:
        fail(str(err))
    console.print(summary_table(report, bucket, stream))
    if report.failures:
        console.print(failures_table(report))
        fail(f"{len(report.failures)} recording(s) failed; the commit was not sent. Fix them and push again "
             "(audio already uploaded is skipped).")
    if not report.ok:
        fail(f"{folder}/labels.csv lists no recordings: nothing was sent.")


def register(app: typer.Typer) -> None:
    app.command("push")(push)
