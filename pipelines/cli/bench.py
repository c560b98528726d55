"""`samay bench`: benchmarks: feature extraction and inference."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from pipelines.cli._common import console, fail, not_built

group = typer.Typer(help="Benchmarks: feature extraction and inference.", no_args_is_help=True)


def default_lung_sounds_dir() -> Path:
    """../shared/data/lung-sounds beside the repository (present in CI and on the dev machine)."""
    import pipelines

    return Path(pipelines.__file__).resolve().parents[1].parent / "shared" / "data" / "lung-sounds"


@group.command("features")
def features(
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON figures."),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder with labels.csv + WAVs (default: ../shared/data/lung-sounds, else synthetic)."
    ),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed runs per recording (the best counts)."),
) -> None:
    """Feature extraction throughput: ours vs plain librosa calls, single thread, same run."""
    from steps.benchmark import bench_features

    if data_dir is not None and not (data_dir / "labels.csv").is_file():
        fail(f"{data_dir} has no labels.csv")
    result = bench_features(data_dir or default_lung_sounds_dir(), repeats=repeats)
    figures = result.figures()
    if as_json:
        print(json.dumps(figures))
        return
    console.print(f"recordings: {result.recordings} ({result.audio_seconds:.0f} s of audio) from {result.source}")
    for name, value in figures.items():
        console.print(f"{name}: {value}")


@group.command("inference")
def inference() -> None:
    """Not built yet."""
    not_built("bench inference", "issue 11")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="bench")
