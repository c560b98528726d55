"""`samay push`: upload a dataset folder to S3 and send its records to Kinesis."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built


def push() -> None:
    """Upload a dataset folder to S3 and send its records to Kinesis. (not built yet)."""
    not_built("push", "issue 7")


def register(app: typer.Typer) -> None:
    app.command("push")(push)
