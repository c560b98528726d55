"""`samay dashboard`: write the local dashboard HTML."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built


def dashboard() -> None:
    """Write the local dashboard HTML. (not built yet)."""
    not_built("dashboard", "issue 10")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
