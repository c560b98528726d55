"""Small helpers shared by the CLI modules."""
from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (no traceback: the message says what to do) and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def not_built(command: str, issue: str) -> NoReturn:
    """Commands of the CLI contract that are not implemented yet say so plainly."""
    fail(f"`samay {command}` is not built yet ({issue}).", code=2)
