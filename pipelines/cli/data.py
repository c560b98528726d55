"""`samay data`: datasets: write synthetic lung sounds."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.cli._common import console, fail

group = typer.Typer(help="Datasets: write synthetic lung sounds.", no_args_is_help=True)


@group.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write labels.csv and audio/*.wav into."),
    patients: int = typer.Option(40, "--patients", help="Number of patients (diagnoses are balanced)."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed writes byte-identical files."),
    difficulty: str = typer.Option(
        "normal", "--difficulty",
        help="easy | normal: distinct diagnostic cues; hard: sounds unrelated to the labels (the gate fails).",
    ),
    recordings_per_patient: int = typer.Option(3, "--recordings-per-patient", help="Recordings per patient."),
    unlabelled: bool = typer.Option(
        False, "--unlabelled", help="Leave diagnosis empty (recordings to score); the truth goes to true_diagnosis."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a dataset already in --out."),
) -> None:
    """Write a synthetic lung-sound dataset in the labels.csv form (DESIGN 4.1)."""
    from steps.synth import SynthError, synthesize_dataset

    with Progress(
        TextColumn("[bold]synthesizing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:
        task = bar.add_task("recordings", total=patients * max(recordings_per_patient, 0))
        try:
            summary = synthesize_dataset(
                out, patients=patients, seed=seed, difficulty=difficulty,
                recordings_per_patient=recordings_per_patient, unlabelled=unlabelled, overwrite=force,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except SynthError as exc:
            fail(str(exc))
    table = Table(title=f"{summary.recordings} recordings of {summary.patients} patients -> {summary.out}")
    table.add_column("what")
    table.add_column("counts")
    table.add_row("patients by diagnosis", _counts(summary.patients_by_diagnosis))
    table.add_row("recordings by sound", _counts(summary.recordings_by_sound_class))
    table.add_row("sample rates (Hz)", _counts(summary.recordings_by_sample_rate))
    table.add_row("bit depths", _counts(summary.recordings_by_subtype))
    table.add_row("audio", f"{summary.audio_seconds:.0f} s")
    console.print(table)
    console.print(f"labels: {summary.labels_csv}" + ("  (unlabelled: diagnosis left empty)" if unlabelled else ""))


def _counts(counts: dict) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(counts.items()))


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="data")
