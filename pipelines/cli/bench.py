"""`samay bench`: benchmarks: feature extraction and inference."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from pipelines.cli._common import console, fail

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
def inference(
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON figures."),
    requests: int = typer.Option(100, min=10, help="Timed requests (sequential, then concurrent)."),
    clients: int = typer.Option(4, min=1, help="Concurrent clients for the throughput run."),
    state_dir: Path = typer.Option(Path(".samay"), "--state-dir", envvar="SAMAY_STATE_DIR",
                                   help="Local cloud to use when the environment points nowhere."),
) -> None:
    """Endpoint latency per 20 s recording (p50, p99), throughput, and the inference Lambda's import time."""
    import os

    from lambdas.shared import aws
    from lambdas.shared.config import Settings
    from pipelines.bench_inference import BenchError, bench_inference

    if "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" not in os.environ and (state_dir / "cloud.json").is_file():
        from infra.local import cloud

        os.environ.update(cloud.read_env(state_dir))
        aws.client.cache_clear()
    try:
        result = bench_inference(Settings.from_env().endpoint_name, default_lung_sounds_dir(), requests=requests, clients=clients)
    except BenchError as err:
        fail(str(err))
    if as_json:
        print(json.dumps(result.figures()))
        return
    console.print(f"{result.requests} requests with {result.source}")
    for name, value in result.figures().items():
        console.print(f"{name}: {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="bench")
