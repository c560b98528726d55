"""`samay data`: datasets: write synthetic lung sounds."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built

group = typer.Typer(help="Datasets: write synthetic lung sounds.", no_args_is_help=True)


@group.command("synth")
def synth() -> None:
    """Not built yet."""
    not_built("data synth", "issue 3")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="data")
