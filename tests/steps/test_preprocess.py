"""The Preprocess job: splits by patient, reports every bad input, and shards like one instance."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from steps import preprocess
from steps.features import FeatureConfig
from tests.conftest import REPO_ROOT
from tests.steps.conftest import BUCKET, DATASET, TinyDataset, write_manifest


def _args(dataset: TinyDataset, out: Path, *extra: str) -> list[str]:
    return ["--manifest-dir", str(dataset.manifest_dir), "--audio-dir", str(dataset.audio_dir),
            "--output-dir", str(out), "--resource-config", str(out.parent / "no-resourceconfig.json"), *extra]


def _written(out: Path) -> dict[str, tuple[str, str, str]]:
    """recording_id -> (split, label, patient_id) from the npz files."""
    result = {}
    for path in sorted(out.glob("*/*.npz")):
        with np.load(path) as npz:
            result[str(npz["recording_id"])] = (path.parent.name, str(npz["label"]), str(npz["patient_id"]))
    return result


def test_script_runs_as_a_subprocess_with_paths_as_arguments(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    out = tmp_path / "output"

    result = subprocess.run([sys.executable, "steps/preprocess.py", *_args(tiny_dataset, out)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    written = _written(out)
    assert len(written) == len(tiny_dataset.rows)
    splits_of_patient: dict[str, set[str]] = {}
    for split, _label, patient in written.values():
        splits_of_patient.setdefault(patient, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_of_patient.values())
    for split in ("train", "validation", "test"):
        assert json.loads((out / split / "labels.json").read_text()) == ["Asthma", "COPD", "Normal"]
        assert FeatureConfig.load(out / split) == FeatureConfig()
        assert {label for s, label, _ in written.values() if s == split} == {"Asthma", "COPD", "Normal"}
    report = json.loads((out / "report" / "report-algo-1.json").read_text())
    assert report["rejected"] == [] and report["dropped"] == []
    assert sum(c["recordings"] for s in report["counts"].values() for c in s.values()) == len(tiny_dataset.rows)
    assert report["counts"] == {
        s: {c: {**v, "windows": report["counts"][s][c]["windows"]} for c, v in report["planned"][s].items()}
        for s in report["planned"]
    }


def test_windows_stored_for_a_recording_have_the_configured_shape(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    out = tmp_path / "output"
    preprocess.main(preprocess.parse_args(_args(tiny_dataset, out)))

    config = FeatureConfig()
    with np.load(next(out.glob("train/*.npz"))) as npz:
        assert npz["windows"].dtype == np.float32
        assert npz["windows"].shape == (2, config.frames_per_window, config.n_mels)


def _add_row(dataset: TinyDataset, recording_id: str, data: bytes | None, **fields: str) -> None:
    if data is not None:
        (dataset.audio_dir / DATASET / f"{recording_id}.wav").write_bytes(data)
    dataset.rows.append({
        "recording_id": recording_id,
        "patient_id": fields.pop("patient_id", f"patient_{recording_id}"),
        "diagnosis": fields.pop("diagnosis", "Normal"),
        "audio_uri": fields.pop("audio_uri", f"s3://{BUCKET}/raw/audio/{DATASET}/{recording_id}.wav"),
        "sha256": hashlib.sha256(data or recording_id.encode()).hexdigest(),
        "dataset": DATASET,
    })


def test_bad_inputs_are_reported_with_reasons_and_never_crash_the_job(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    good = (tiny_dataset.audio_dir / DATASET / f"{tiny_dataset.rows[0]['recording_id']}.wav").read_bytes()
    header_only = good[:44]
    _add_row(tiny_dataset, "empty", b"")
    _add_row(tiny_dataset, "text", b"this is not a wav file at all")
    _add_row(tiny_dataset, "truncated", good[:-1000])
    _add_row(tiny_dataset, "cut_header", header_only)
    _add_row(tiny_dataset, "gone", None)
    _add_row(tiny_dataset, "elsewhere", good + b"x", audio_uri="s3://samay-test/somewhere/else.wav")
    _add_row(tiny_dataset, "unlabelled", good + b"y", diagnosis="")
    _add_row(tiny_dataset, "copy_a", good + b"z", patient_id="p_a", diagnosis="Asthma")
    _add_row(tiny_dataset, "copy_b", good + b"z", patient_id="p_b", diagnosis="COPD")
    write_manifest(tiny_dataset.manifest, tiny_dataset.rows)
    out = tmp_path / "output"

    report = preprocess.main(preprocess.parse_args(_args(tiny_dataset, out)))

    rejected = {r["recording_id"]: r["reason"] for r in report["rejected"]}
    assert rejected == {"empty": "empty", "text": "not_wav", "truncated": "truncated", "cut_header": "truncated",
                        "gone": "missing_audio", "elsewhere": "bad_audio_uri"}
    assert {d["recording_id"]: d["reason"] for d in report["dropped"]} == {
        "copy_a": "conflicting_duplicate", "copy_b": "conflicting_duplicate"}
    assert report["unlabelled"] == 1
    written = _written(out)
    assert not set(written) & (set(rejected) | {"copy_a", "copy_b", "unlabelled"})
    assert len(written) + len(rejected) + len(report["dropped"]) + report["unlabelled"] == len(tiny_dataset.rows)


def test_too_few_patients_fail_with_a_clear_message(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    write_manifest(tiny_dataset.manifest, tiny_dataset.rows[:4])

    with pytest.raises(SystemExit, match="cannot fill the validation split"):
        preprocess.main(preprocess.parse_args(_args(tiny_dataset, tmp_path / "output")))


def test_cross_validation_folds_test_each_patient_once(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    tested: list[str] = []
    for fold in range(3):
        out = tmp_path / f"fold-{fold}"
        preprocess.main(preprocess.parse_args(_args(tiny_dataset, out, "--folds", "3", "--test-fold", str(fold))))
        written = _written(out)
        splits_of = {}
        for split, _, patient in written.values():
            splits_of.setdefault(patient, set()).add(split)
        assert all(len(s) == 1 for s in splits_of.values())
        tested += [p for p, s in splits_of.items() if s == {"test"}]

    assert sorted(tested) == sorted({row["patient_id"] for row in tiny_dataset.rows})


def test_an_impossible_test_fold_fails_with_a_clear_message(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="0 <= test fold < folds"):
        preprocess.main(preprocess.parse_args(_args(tiny_dataset, tmp_path / "o", "--folds", "3", "--test-fold", "3")))


def test_missing_manifest_fails_with_a_clear_message(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    tiny_dataset.manifest.unlink()

    result = subprocess.run([sys.executable, "steps/preprocess.py", *_args(tiny_dataset, tmp_path / "o")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 1
    assert "expected exactly one manifest *.csv" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_sharded_instances_write_the_same_splits_as_one(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    single = tmp_path / "single"
    preprocess.main(preprocess.parse_args(_args(tiny_dataset, single)))

    merged = tmp_path / "merged"
    wavs = sorted((tiny_dataset.audio_dir / DATASET).glob("*.wav"))
    for index, host in enumerate(["algo-1", "algo-2"]):
        shard_audio = tmp_path / f"audio-{host}" / DATASET
        shard_audio.mkdir(parents=True)
        for wav in wavs[index::2]:
            shutil.copy(wav, shard_audio / wav.name)
        config = tmp_path / f"resourceconfig-{host}.json"
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        out = tmp_path / f"out-{host}"
        preprocess.main(preprocess.parse_args([
            "--manifest-dir", str(tiny_dataset.manifest_dir), "--audio-dir", str(shard_audio.parent),
            "--output-dir", str(out), "--resource-config", str(config)]))
        report = json.loads((out / "report" / f"report-{host}.json").read_text())
        assert report["rejected"] == []
        assert report["skipped_other_shard"] == len(wavs) - len(wavs[index::2])
        shutil.copytree(out, merged, dirs_exist_ok=True)

    assert _written(merged) == _written(single)
    for path in single.glob("*/*.npz"):
        with np.load(path) as a, np.load(merged / path.relative_to(single)) as b:
            np.testing.assert_array_equal(a["windows"], b["windows"])
    assert sorted(p.name for p in (merged / "report").iterdir()) == ["report-algo-1.json", "report-algo-2.json"]
