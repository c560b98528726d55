"""Synthetic lung sounds: deterministic, in the labels.csv form, mixed formats, and a working difficulty dial."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from steps.audio import MODEL_SAMPLE_RATE, load_audio
from steps.synth import (
    CLASSES,
    LABEL_COLUMNS,
    SAMPLE_RATES,
    SUBTYPES,
    TRUTH_COLUMN,
    SynthError,
    plan_dataset,
    synthesize_dataset,
)


def read_labels(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "small"
    synthesize_dataset(out, patients=5, recordings_per_patient=3, seed=7, difficulty="normal")
    return out


def test_labels_csv_has_the_dataset_columns_and_one_row_per_wav(small):
    rows = read_labels(small)

    assert list(rows[0]) == list(LABEL_COLUMNS)
    assert len(rows) == 15
    assert sorted(p.name for p in (small / "audio").iterdir()) == sorted(Path(r["file"]).name for r in rows)
    assert len({r["recording_id"] for r in rows}) == 15
    assert {r["diagnosis"] for r in rows} == set(CLASSES)  # 5 patients, balanced over 5 classes
    by_patient = {}
    for row in rows:
        by_patient.setdefault(row["patient_id"], set()).add((row["diagnosis"], row["age"], row["sex"]))
    assert len(by_patient) == 5 and all(len(v) == 1 for v in by_patient.values())


def test_mixed_sample_rates_and_bit_depths_are_written(small):
    infos = [sf.info(str(small / r["file"])) for r in read_labels(small)]

    assert {i.samplerate for i in infos} == set(SAMPLE_RATES)
    assert {i.subtype for i in infos} == set(SUBTYPES)
    assert {i.format for i in infos} == {"WAV"}


def test_every_recording_decodes_through_load_audio(small):
    for row in read_labels(small):
        samples = load_audio(small / row["file"])
        assert 8.0 <= samples.size / MODEL_SAMPLE_RATE <= 12.0
        assert 0.05 < np.max(np.abs(samples)) <= 1.0


def test_same_seed_gives_byte_identical_output_and_another_seed_does_not(small, tmp_path):
    again = tmp_path / "again"
    synthesize_dataset(again, patients=5, recordings_per_patient=3, seed=7, difficulty="normal")
    other = tmp_path / "other"
    synthesize_dataset(other, patients=5, recordings_per_patient=3, seed=8, difficulty="normal")

    files = sorted(p.relative_to(small) for p in small.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (small / rel).read_bytes() == (again / rel).read_bytes(), rel
    first_small = (small / read_labels(small)[0]["file"]).read_bytes()
    first_other = (other / read_labels(other)[0]["file"]).read_bytes()
    assert first_small != first_other


def test_unlabelled_leaves_diagnosis_empty_and_keeps_the_truth_aside(tmp_path):
    out = tmp_path / "new"
    summary = synthesize_dataset(out, patients=3, recordings_per_patient=1, seed=7, unlabelled=True)

    rows = read_labels(out)
    assert list(rows[0]) == list(LABEL_COLUMNS) + [TRUTH_COLUMN]
    assert all(r["diagnosis"] == "" for r in rows)
    assert {r[TRUTH_COLUMN] for r in rows} <= set(CLASSES) and summary.recordings == 3
    labelled_ids = {p.recording_id for p in plan_dataset(patients=3, recordings_per_patient=1, seed=7)}
    assert labelled_ids.isdisjoint(r["recording_id"] for r in rows)


def test_sound_class_follows_the_cues_on_easy(tmp_path):
    out = tmp_path / "easy"
    synthesize_dataset(out, patients=10, recordings_per_patient=2, seed=3, difficulty="easy")

    by_diagnosis = {}
    for row in read_labels(out):
        by_diagnosis.setdefault(row["diagnosis"], set()).add(row["sound_class"])
    assert by_diagnosis["Normal"] == {"normal"}
    assert by_diagnosis["Asthma"] == {"wheeze"} and by_diagnosis["COPD"] == {"wheeze"}
    assert by_diagnosis["Pneumonia"] == {"crackle"} and by_diagnosis["Heart failure"] == {"crackle"}


def test_hard_draws_the_sounds_independently_of_the_label():
    easy = plan_dataset(patients=40, seed=1, difficulty="easy")
    hard = plan_dataset(patients=40, seed=1, difficulty="hard")

    assert all(p.profile == p.diagnosis for p in easy)
    mismatched = {p.patient_id for p in hard if p.profile != p.diagnosis}
    assert len(mismatched) >= 20  # 4 in 5 expected when the profile is a uniform draw


def spectral_stats(samples: np.ndarray) -> np.ndarray:
    """Per-band level and peak prominence: what a wheeze (tone) or crackle (transient) changes."""
    import librosa

    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=samples, sr=MODEL_SAMPLE_RATE, n_fft=256, hop_length=64, n_mels=24)
    )
    prominence = mel - np.median(mel, axis=1, keepdims=True)
    return np.concatenate([mel.mean(1) - mel.mean(), mel.std(1), np.percentile(prominence, [90, 99], axis=1).ravel()])


def grouped_accuracy(folder: Path) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = read_labels(folder)
    features = np.array([spectral_stats(load_audio(folder / r["file"])) for r in rows])
    labels = [r["diagnosis"] for r in rows]
    groups = [r["patient_id"] for r in rows]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=3000))
    return float(cross_val_score(model, features, labels, groups=groups, cv=GroupKFold(5)).mean())


def test_difficulty_dial_easy_is_learnable_and_hard_is_not(tmp_path):
    accuracy = {}
    for difficulty in ("easy", "hard"):
        out = tmp_path / difficulty
        synthesize_dataset(out, patients=25, recordings_per_patient=2, seed=11, difficulty=difficulty)
        accuracy[difficulty] = grouped_accuracy(out)

    assert accuracy["easy"] >= 0.8, accuracy
    assert accuracy["hard"] <= 0.45, accuracy  # chance is 0.2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"difficulty": "medium"}, "difficulty 'medium'"),
        ({"patients": 0}, "patients must be at least 1"),
        ({"recordings_per_patient": 0}, "recordings per patient"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    out = tmp_path / "x"
    with pytest.raises(SynthError, match=message):
        synthesize_dataset(out, **kwargs)
    assert not out.exists()


def test_an_occupied_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SynthError, match="not empty"):
        synthesize_dataset(out, patients=1, recordings_per_patient=1)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_an_earlier_dataset_without_leftovers(tmp_path):
    out = tmp_path / "ds"
    synthesize_dataset(out, patients=3, recordings_per_patient=2, seed=5)
    synthesize_dataset(out, patients=1, recordings_per_patient=1, seed=5, overwrite=True)

    assert len(read_labels(out)) == 1
    assert len(list((out / "audio").iterdir())) == 1


def test_progress_is_reported_per_recording(tmp_path):
    calls = []
    synthesize_dataset(tmp_path / "p", patients=2, recordings_per_patient=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cli_writes_a_dataset_and_reports_bad_options_clearly(tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["data", "synth", "--out", str(out), "--patients", "2", "--recordings-per-patient", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(read_labels(out)) == 2 and "2 recordings of 2 patients" in result.output

    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "bad"), "--difficulty", "medium"])
    assert result.exit_code == 1
    assert "difficulty 'medium'" in result.output
