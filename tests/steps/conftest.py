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
