"""Tiny synthetic lung-sound datasets made in-test (numpy + soundfile), in the manifest layout.

Each class has a distinct sound (noise bed + class-specific tone or crackles), so a tiny model can
learn it in a few epochs; several recordings per patient so patient grouping matters.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

MANIFEST_COLUMNS = [
    "recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset",
    "location", "device", "filter_mode", "sound_class", "age", "sex",
]
BUCKET = "samay-test"
DATASET = "tiny"
CLASS_TONES = {"Normal": None, "Asthma": 440.0, "COPD": 150.0}


def synth_audio(diagnosis: str, seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Breathing-like noise bed, plus a sustained tone (wheeze-like) whose pitch depends on the class."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t) ** 2
    audio = 0.05 * rng.standard_normal(t.size) * envelope
    tone = CLASS_TONES.get(diagnosis)
    if tone is not None:
        audio += 0.3 * np.sin(2 * np.pi * (tone * (1 + 0.05 * rng.standard_normal())) * t) * envelope
    return audio.astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, subtype=subtype)
    return path.read_bytes()


@dataclass
class TinyDataset:
    """A manifest folder + audio folder as the Preprocess job sees them."""

    manifest_dir: Path
    audio_dir: Path
    rows: list[dict]

    @property
    def manifest(self) -> Path:
        return self.manifest_dir / "manifest.csv"


def write_manifest(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in MANIFEST_COLUMNS})


def make_dataset(
    root: Path, *, patients_per_class: int = 8, recordings_per_patient: int = 2, seconds: float = 6.0, seed: int = 0
) -> TinyDataset:
    """Write WAVs under <root>/audio/<dataset>/<recording_id>.wav and <root>/manifest/manifest.csv."""
    rng = np.random.default_rng(seed)
    audio_dir, manifest_dir = root / "audio", root / "manifest"
    rows = []
    for diagnosis in CLASS_TONES:
        for p in range(patients_per_class):
            patient = f"{diagnosis.lower()}_{p}"
            for r in range(recordings_per_patient):
                recording_id = f"{patient}_r{r}"
                sample_rate = 4000 if r % 2 == 0 else 8000
                data = write_wav(
                    audio_dir / DATASET / f"{recording_id}.wav",
                    synth_audio(diagnosis, seconds, sample_rate, rng),
                    sample_rate,
                )
                rows.append({
                    "recording_id": recording_id,
                    "patient_id": patient,
                    "diagnosis": diagnosis,
                    "audio_uri": f"s3://{BUCKET}/raw/audio/{DATASET}/{recording_id}.wav",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "dataset": DATASET,
                })
    write_manifest(manifest_dir / "manifest.csv", rows)
    return TinyDataset(manifest_dir, audio_dir, rows)


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> TinyDataset:
    return make_dataset(tmp_path / "input")


@pytest.fixture(scope="session")
def session_dataset(tmp_path_factory: pytest.TempPathFactory) -> TinyDataset:
    """One dataset shared by the slower end-to-end tests (preprocess -> train -> evaluate)."""
    return make_dataset(tmp_path_factory.mktemp("dataset"))


def container_source_dir(root: Path) -> Path:
    """The code folder a SageMaker job gets: steps/ contents at its root plus a steps/ package copy
    (source_dir=steps, dependencies=[steps]); scripts run from here import the copy, not the repo."""
    import shutil

    from tests.conftest import REPO_ROOT

    ignore = shutil.ignore_patterns("__pycache__")
    code = root / "code"
    shutil.copytree(REPO_ROOT / "steps", code, ignore=ignore)
    shutil.copytree(REPO_ROOT / "steps", code / "steps", ignore=ignore)
    return code


@dataclass
class TrainedRun:
    dataset: TinyDataset
    splits: Path
    model_dir: Path
    output_data_dir: Path
    tarball_dir: Path


TRAIN_HYPERPARAMETERS = ["--epochs", "8", "--batch-size", "16", "--learning-rate", "0.003", "--seed", "7"]


@pytest.fixture(scope="session")
def trained_run(session_dataset: TinyDataset, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Preprocess in-process, then Train as the TensorFlow container runs it (env SM_*, source dir,
    hyperparameters as arguments, --model_dir passed and ignored), then tar the artifact as SageMaker does."""
    import os
    import subprocess
    import sys
    import tarfile

    from steps import preprocess

    root = tmp_path_factory.mktemp("run")
    splits = root / "splits"
    preprocess.main(preprocess.parse_args([
        "--manifest-dir", str(session_dataset.manifest_dir), "--audio-dir", str(session_dataset.audio_dir),
        "--output-dir", str(splits), "--resource-config", str(root / "absent.json")]))
    code = container_source_dir(root)
    model_dir, output_data_dir = root / "model", root / "output-data"
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SM_CHANNEL_TRAIN": str(splits / "train"),
           "SM_CHANNEL_VALIDATION": str(splits / "validation"), "SM_OUTPUT_DATA_DIR": str(output_data_dir),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "train.py", *TRAIN_HYPERPARAMETERS, "--model_dir", "s3://bucket/checkpoints"],
        cwd=code, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tarball_dir = root / "model-tarball"
    tarball_dir.mkdir()
    with tarfile.open(tarball_dir / "model.tar.gz", "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    return TrainedRun(session_dataset, splits, model_dir, output_data_dir, tarball_dir)
