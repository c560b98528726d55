"""The data layer over real recordings nobody in this project made (../shared/data/lung-sounds).

Skipped with a reason when the folder is absent (see tests/conftest.py).
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf

from steps.audio import MODEL_SAMPLE_RATE, AudioError, load_audio
from steps.datasets import (
    CONFLICTING_LABELS,
    SAME_PATIENT,
    cycle_counts,
    exclude_conflicting_duplicates,
    find_duplicate_audio,
    load_dataset,
    load_icbhi,
    parse_cycle_annotations,
)

KNOWN_DUPLICATES = {
    frozenset(pair) for pair in (("BP100", "BP101"), ("DP100", "DP101"), ("EP76", "EP77"), ("DP9", "BP9"))
}


@pytest.fixture(scope="module")
def dataset(lung_sounds_dir: Path):
    return load_dataset(lung_sounds_dir)


def test_every_kauh_and_icbhi_wav_decodes_at_the_model_rate(lung_sounds_dir, dataset):
    wavs = sorted(lung_sounds_dir.glob("kauh/audio/*.wav")) + sorted(lung_sounds_dir.glob("icbhi/audio/*.wav"))
    expected_seconds = dict(zip(dataset["file"], dataset["duration_s"].astype(float)))
    failures = []
    for path in wavs:
        try:
            samples = load_audio(path)
        except AudioError as exc:
            failures.append(str(exc))
            continue
        seconds = expected_seconds[path.relative_to(lung_sounds_dir).as_posix()]
        if abs(samples.size - seconds * MODEL_SAMPLE_RATE) > 1:
            failures.append(f"{path.name}: {samples.size} samples for {seconds} s")

    assert failures == []
    assert len(wavs) == 238


def test_icbhi_audio_covers_the_awkward_formats(lung_sounds_dir):
    infos = [sf.info(str(path)) for path in sorted(lung_sounds_dir.glob("icbhi/audio/*.wav"))]

    assert {"PCM_16", "PCM_24", "PCM_32"} <= {info.subtype for info in infos}
    assert {4000, 44100} <= {info.samplerate for info in infos}


def test_all_920_icbhi_annotation_files_parse_and_match_the_published_counts(lung_sounds_dir):
    annotations = sorted((lung_sounds_dir / "icbhi" / "annotations").glob("*.txt"))
    with (lung_sounds_dir / "icbhi" / "icbhi_all_recordings_labels.csv").open(newline="") as handle:
        published = {row["recording"]: row for row in csv.DictReader(handle)}

    mismatches, total = [], 0
    for path in annotations:
        counts = cycle_counts(parse_cycle_annotations(path))
        total += counts["n_cycles"]
        row = published[path.stem]
        expected = {
            "n_cycles": int(row["n_cycles"]), "n_crackle_cycles": int(row["n_crackle_only"]),
            "n_wheeze_cycles": int(row["n_wheeze_only"]), "n_both_cycles": int(row["n_both"]),
        }
        if counts != expected:
            mismatches.append((path.stem, counts, expected))

    assert len(annotations) == 920
    assert mismatches == []
    assert total == 6898  # the ICBHI 2017 database's respiratory cycles


def test_load_dataset_reads_the_real_labels(dataset):
    assert len(dataset) == 238
    assert dataset["recording_id"].is_unique
    assert dataset["diagnosis"].notna().all()
    assert dataset.loc[dataset["source"] == "KAUH", "patient_id"].nunique() == 76
    assert {"identical_audio_as", "orig_name", "n_cycles"} <= set(dataset.columns)


def test_load_icbhi_agrees_with_the_real_labels(lung_sounds_dir, dataset):
    icbhi = load_icbhi(lung_sounds_dir / "icbhi")
    labelled = dataset[dataset["source"] == "ICBHI"].set_index("recording_id")

    assert len(icbhi) == 10
    for _, row in icbhi.iterrows():
        truth = labelled.loc[row["recording_id"]]
        assert row["patient_id"] == truth["patient_id"]
        assert row["diagnosis"] == truth["diagnosis"]
        assert (row["location"], row["device"]) == (truth["location"], truth["device"])
        assert row["n_cycles"] == int(truth["n_cycles"])
        assert row["n_wheeze_cycles"] == int(truth["n_wheeze_cycles"])
        assert row["sound_class"] == truth["sound_class"]


def test_known_duplicate_pairs_are_detected_and_excluded(lung_sounds_dir, dataset):
    found = find_duplicate_audio(dataset, lung_sounds_dir)
    pairs = {frozenset(group["recording_id"]) for _, group in found.groupby("sha256")}

    assert pairs == KNOWN_DUPLICATES
    documented = dataset.dropna(subset=["identical_audio_as"])
    assert set(documented["file"]) | set(documented["identical_audio_as"]) == set(found["file"])

    kept, excluded = exclude_conflicting_duplicates(dataset, lung_sounds_dir)
    reasons = dict(zip(excluded["recording_id"], excluded["reason"]))
    assert reasons == {
        "BP100": CONFLICTING_LABELS, "BP101": CONFLICTING_LABELS, "DP100": CONFLICTING_LABELS,
        "DP101": CONFLICTING_LABELS, "EP76": CONFLICTING_LABELS, "EP77": CONFLICTING_LABELS, "DP9": SAME_PATIENT,
    }
    assert "BP9" in set(kept["recording_id"]) and len(kept) == 238 - 7
