"""The model-quality report: the reference model on the pipeline's own folds, and the paired summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from steps import mfcc_baseline, preprocess
from steps.metrics import evaluation_report, json_get
from steps.real_data_report import reference_fold, summarise
from tests.steps.conftest import TinyDataset


def test_mfcc_statistics_are_a_mean_and_std_per_coefficient(tiny_dataset: TinyDataset) -> None:
    wav = next((tiny_dataset.audio_dir).glob("*/*.wav"))

    stats = mfcc_baseline.mfcc_statistics(wav)

    assert stats.shape == (2 * mfcc_baseline.N_MFCC,)
    assert np.all(np.isfinite(stats))
    assert np.all(stats[mfcc_baseline.N_MFCC:] >= 0)


def test_reference_scores_the_folds_own_test_recordings(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    out = tmp_path / "splits"
    preprocess.main(preprocess.parse_args([
        "--manifest-dir", str(tiny_dataset.manifest_dir), "--audio-dir", str(tiny_dataset.audio_dir),
        "--output-dir", str(out), "--resource-config", str(tmp_path / "none.json"),
        "--folds", "2", "--test-fold", "1"]))
    wav_of = {path.stem: path for path in tiny_dataset.audio_dir.glob("*/*.wav")}
    cache: dict[str, np.ndarray] = {}

    report = reference_fold(out, wav_of, cache)

    assert report["test_recordings"] == len(list((out / "test").glob("*.npz")))
    assert set(cache) == {p.stem for p in out.glob("*/*.npz")}
    # The tiny dataset's classes differ by a tone: the reference must find it, well above the baseline.
    assert json_get(report, "multiclass_classification_metrics.accuracy.value") >= 0.9
    assert report["baseline"]["accuracy"] < 0.5


def _evaluation(seed: int, truth: list[str], predicted: list[str]) -> dict:
    return {**evaluation_report(truth, predicted, ["A", "B"], train_label_counts={"A": 3, "B": 1}, test_patients=2),
            "seed": seed}


def test_summary_pools_each_seeds_folds_and_pairs_the_models_fold_by_fold() -> None:
    truth = ["A", "A", "B", "B"]
    runs = [
        {"seed": 1, "evaluation": _evaluation(1, truth, ["A", "A", "B", "B"]),
         "reference": _evaluation(1, truth, ["A", "A", "A", "A"]), "dropped": [], "rejected": []},
        {"seed": 1, "evaluation": _evaluation(1, truth, ["A", "B", "B", "A"]),
         "reference": _evaluation(1, truth, ["A", "A", "B", "A"]), "dropped": [], "rejected": []},
    ]

    summary = summarise(runs, seeds=[1])

    assert summary["cnn"]["accuracy"]["per_run"] == [1.0, 0.5]
    assert summary["cnn"]["pooled_accuracy"] == pytest.approx(0.75)
    assert summary["cnn"]["pooled_confusion_matrix"] == [[3, 1], [1, 3]]
    assert summary["reference_mfcc_logreg"]["pooled_accuracy"] == pytest.approx(0.625)
    assert summary["cnn_minus_reference_accuracy"]["per_run"] == [0.5, -0.25]
    assert summary["cnn_minus_reference_accuracy"]["cnn_better"] == 1
    assert summary["majority_baseline"]["pooled"] == pytest.approx(0.5)
