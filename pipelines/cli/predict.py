"""`samay predict FILE... [--json] [--endpoint NAME]`: score local WAV files through the endpoint.

A quick look for a person at a terminal: each file goes straight to InvokeEndpoint (the same
header check and retry policy as the inference Lambda, `lambdas.shared.scoring`); nothing is
stored. A file that cannot be scored gets its own clear error and the others are still scored;
the exit code is non-zero at the end if any failed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from lambdas.shared.config import Settings
from pipelines.cli._common import console, err_console, fail

if TYPE_CHECKING:  # boto3 and pydantic load inside the command, so `samay --help` stays fast
    from lambdas.shared.scoring import Scored


def predict(
    files: list[Path] = typer.Argument(..., metavar="FILE", help="WAV files to score (each is checked, then sent as audio/wav)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per file, one per line, instead of a table."),
    endpoint: str = typer.Option(None, "--endpoint", help="Endpoint name (default: $SAMAY_ENDPOINT_NAME, else samay-lung-sound)."),
) -> None:
    """Score local WAV files through the endpoint and print label and class probabilities."""
    from botocore.exceptions import BotoCoreError

    from lambdas.shared.scoring import RetryPolicy, ScoringError, score_wav

    endpoint_name = endpoint or Settings.from_env().endpoint_name
    policy = RetryPolicy.from_env()
    results: list[tuple[Path, Scored]] = []
    failures = 0
    for path in files:
        try:
            scored = score_wav(_read(path), name=path.name, endpoint_name=endpoint_name, policy=policy)
        except (ScoringError, OSError) as err:
            failures += 1
            _report_failure(path, err, as_json)
            continue
        except BotoCoreError as err:
            fail(f"cannot call endpoint {endpoint_name}: {err} (is `samay local up` running, or AWS configured?)")
        results.append((path, scored))
        if as_json:
            typer.echo(json.dumps(_as_row(path, scored)))
    if results and not as_json:
        console.print(result_table(results, endpoint_name))
    if failures:
        fail(f"{failures} of {len(files)} file(s) could not be scored")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise OSError(f"{path}: is a directory, not a WAV file") from None
    except OSError as err:
        raise OSError(f"{path}: cannot read ({err.strerror})") from None


def _report_failure(path: Path, err: Exception, as_json: bool) -> None:
    reason = getattr(err, "reason", "unreadable")
    message = str(err) if isinstance(err, OSError) else f"{path}: {err.message}"
    err_console.print(f"[bold red]error:[/] {message} [dim]({reason})[/]", highlight=False)
    if as_json:
        typer.echo(json.dumps({"file": str(path), "error": reason, "message": message}))


def _as_row(path: Path, scored: Scored) -> dict[str, Any]:
    return {"file": str(path), **scored.prediction.model_dump(), "latency_ms": scored.latency_ms}


def result_table(results: list[tuple[Path, Scored]], endpoint_name: str) -> Table:
    """One row per file: the label, then one probability column per class (the label's in bold)."""
    classes = sorted({name for _, scored in results for name in scored.prediction.probabilities})
    table = Table(title=f"samay predict ({endpoint_name})")
    table.add_column("file", overflow="fold")
    table.add_column("label", style="bold")
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("model", justify="right")
    table.add_column("windows", justify="right")
    for path, scored in results:
        prediction = scored.prediction
        cells = [
            f"[bold]{prediction.probabilities[name]:.3f}[/]" if name == prediction.label else f"{prediction.probabilities.get(name, 0.0):.3f}"
            for name in classes
        ]
        table.add_row(path.name, prediction.label, *cells, prediction.model_version, str(prediction.windows))
    return table


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
