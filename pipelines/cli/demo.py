"""`samay demo`: the main job: local cloud, synthetic data, push, pipeline, deploy, score, dashboard."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built


def demo() -> None:
    """The main job: local cloud, synthetic data, push, pipeline, deploy, score, dashboard. (not built yet)."""
    not_built("demo", "issue 11")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
