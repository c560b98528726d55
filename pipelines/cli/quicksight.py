"""`samay quicksight`: quickSight: write the S3 manifest."""
from __future__ import annotations

import typer

from pipelines.cli._common import not_built

group = typer.Typer(help="QuickSight: write the S3 manifest.", no_args_is_help=True)


@group.command("manifest")
def manifest() -> None:
    """Not built yet."""
    not_built("quicksight manifest", "issue 10")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="quicksight")
