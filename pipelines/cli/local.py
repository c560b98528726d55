"""`samay local`: start, stop and inspect the local cloud (moto + local SageMaker)."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built

group = typer.Typer(help="Start, stop and inspect the local cloud (moto + local SageMaker).", no_args_is_help=True)


@group.command("up")
def up() -> None:
    """Not built yet."""
    not_built("local up", "issue 6")


@group.command("down")
def down() -> None:
    """Not built yet."""
    not_built("local down", "issue 6")


@group.command("status")
def status() -> None:
    """Not built yet."""
    not_built("local status", "issue 6")


@group.command("env")
def env() -> None:
    """Not built yet."""
    not_built("local env", "issue 6")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="local")
