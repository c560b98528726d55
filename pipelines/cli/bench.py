"""`samay bench`: benchmarks: feature extraction and inference."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built

group = typer.Typer(help="Benchmarks: feature extraction and inference.", no_args_is_help=True)


@group.command("features")
def features() -> None:
    """Not built yet."""
    not_built("bench features", "issue 11")


@group.command("inference")
def inference() -> None:
    """Not built yet."""
    not_built("bench inference", "issue 11")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="bench")
