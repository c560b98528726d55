"""`samay pipeline`: the SageMaker pipeline: definition, upsert, run, status."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built

group = typer.Typer(help="The SageMaker pipeline: definition, upsert, run, status.", no_args_is_help=True)


@group.command("definition")
def definition() -> None:
    """Not built yet."""
    not_built("pipeline definition", "issue 5")


@group.command("upsert")
def upsert() -> None:
    """Not built yet."""
    not_built("pipeline upsert", "issue 5")


@group.command("run")
def run() -> None:
    """Not built yet."""
    not_built("pipeline run", "issue 5")


@group.command("status")
def status() -> None:
    """Not built yet."""
    not_built("pipeline status", "issue 5")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="pipeline")
