"""`samay deploy`: package the Lambdas and deploy the AWS stack."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built


def deploy() -> None:
    """Package the Lambdas and deploy the AWS stack. (not built yet)."""
    not_built("deploy", "issue 9")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
