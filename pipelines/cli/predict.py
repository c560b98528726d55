"""`samay predict`: score local WAV files through the endpoint."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built


def predict() -> None:
    """Score local WAV files through the endpoint. (not built yet)."""
    not_built("predict", "issue 8")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
