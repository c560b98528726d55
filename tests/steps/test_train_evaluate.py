"""Preprocess -> Train -> Evaluate end to end on a tiny synthetic dataset, plus the metric functions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from steps import evaluate, train
from steps.features import FeatureConfig
from steps.metrics import (
    ACCURACY_JSON_PATH,
    BASELINE_JSON_PATH,
    accuracy,
    balanced_accuracy,
    confusion_counts,
    evaluation_report,
    json_get,
    majority_baseline,
    weighted_f1,
)
from tests.conftest import REPO_ROOT
from tests.steps.conftest import TRAIN_HYPERPARAMETERS, TrainedRun

CLASSES = ["Asthma", "COPD", "Normal"]


def _patients_by_split(splits: Path) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for path in splits.glob("*/*.npz"):
        with np.load(path) as npz:
            result.setdefault(path.parent.name, set()).add(str(npz["patient_id"]))
    return result


def test_splits_are_patient_disjoint_and_all_populated(trained_run: TrainedRun) -> None:
    patients = _patients_by_split(trained_run.splits)

    assert set(patients) == {"train", "validation", "test"}
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]


def test_train_writes_the_design_artifact_layout(trained_run: TrainedRun) -> None:
    model = trained_run.model_dir

    assert (model / "1" / "saved_model.pb").is_file() and (model / "1" / "variables").is_dir()
    assert sorted(p.name for p in (model / "code").iterdir()) == ["inference.py", "requirements.txt", "steps"]
    assert sorted(p.name for p in (model / "code" / "steps").iterdir()) == ["__init__.py", "audio.py", "features.py"]
    for name in ("audio.py", "features.py"):
        assert (model / "code" / "steps" / name).read_text() == (REPO_ROOT / "steps" / name).read_text()
    assert (model / "code" / "inference.py").read_text() == (REPO_ROOT / "steps/serving/inference.py").read_text()
    requirements = (model / "code" / "requirements.txt").read_text()
    assert "librosa==" in requirements and "soundfile==" in requirements
    assert json.loads((model / "labels.json").read_text()) == CLASSES
    assert FeatureConfig.load(model) == FeatureConfig()
    training = json.loads((model / "training.json").read_text())
    assert sum(training["label_counts"].values()) == len(list((trained_run.splits / "train").glob("*.npz")))
    assert training["hyperparameters"]["seed"] == 7
    metrics = json.loads((trained_run.output_data_dir / "metrics.json").read_text())
    assert len(metrics["history"]["val_loss"]) == metrics["epochs_run"] <= 8


def test_saved_model_serves_float32_windows_of_the_feature_shape(trained_run: TrainedRun) -> None:
    import tensorflow as tf

    config = FeatureConfig()
    serve = tf.saved_model.load(str(trained_run.model_dir / "1")).signatures["serving_default"]

    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, config.frames_per_window, config.n_mels]
    (probabilities,) = serve(**{spec.name: tf.zeros((3, config.frames_per_window, config.n_mels))}).values()
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)


def _check_evaluation(report: dict, trained_run: TrainedRun) -> None:
    assert set(report) == {"multiclass_classification_metrics", "baseline", "classes", "test_patients", "test_recordings"}
    metrics = report["multiclass_classification_metrics"]
    assert set(metrics) == {"accuracy", "balanced_accuracy", "weighted_f1", "confusion_matrix"}
    for name in ("accuracy", "balanced_accuracy", "weighted_f1"):
        assert metrics[name]["standard_deviation"] == "NaN" and 0 <= metrics[name]["value"] <= 1
    assert report["classes"] == CLASSES
    matrix = metrics["confusion_matrix"]
    assert list(matrix) == CLASSES and all(list(row) == CLASSES for row in matrix.values())
    test_files = list((trained_run.splits / "test").glob("*.npz"))
    assert sum(sum(row.values()) for row in matrix.values()) == report["test_recordings"] == len(test_files)
    assert report["test_patients"] == len(_patients_by_split(trained_run.splits)["test"])
    training = json.loads((trained_run.model_dir / "training.json").read_text())
    majority = min(training["label_counts"], key=lambda c: (-training["label_counts"][c], c))
    assert report["baseline"]["majority_class"] == majority
    assert json_get(report, ACCURACY_JSON_PATH) > json_get(report, BASELINE_JSON_PATH)


def test_evaluate_script_scores_the_tarball_as_a_subprocess(trained_run: TrainedRun, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "steps/evaluate.py", "--model-dir", str(trained_run.tarball_dir),
         "--test-dir", str(trained_run.splits / "test"), "--output-dir", str(tmp_path / "evaluation")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    _check_evaluation(report, trained_run)
    in_process = evaluate.main(evaluate.parse_args([
        "--model-dir", str(trained_run.tarball_dir), "--test-dir", str(trained_run.splits / "test"),
        "--output-dir", str(tmp_path / "again")]))
    assert in_process == report


def test_training_in_process_reproduces_the_container_run(trained_run: TrainedRun, tmp_path: Path) -> None:
    summary = train.main(train.parse_args([
        *TRAIN_HYPERPARAMETERS, "--sm-model-dir", str(tmp_path / "model"),
        "--train", str(trained_run.splits / "train"), "--validation", str(trained_run.splits / "validation"),
        "--output-data-dir", str(tmp_path / "data")]))

    container = json.loads((trained_run.model_dir / "training.json").read_text())
    assert summary["epochs_run"] == container["epochs_run"]
    assert summary["best_val_loss"] == pytest.approx(container["best_val_loss"], rel=1e-4)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(
        p.name for p in trained_run.model_dir.iterdir())


def test_train_refuses_an_empty_channel_with_a_clear_message(trained_run: TrainedRun, tmp_path: Path) -> None:
    empty = tmp_path / "validation"
    empty.mkdir()
    for name in ("labels.json", "features.json"):
        (empty / name).write_bytes((trained_run.splits / "train" / name).read_bytes())

    with pytest.raises(SystemExit, match="no recordings"):
        train.main(train.parse_args(["--sm-model-dir", str(tmp_path / "m"), "--train", str(trained_run.splits / "train"),
                                     "--validation", str(empty), "--output-data-dir", str(tmp_path / "d")]))


def test_evaluate_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="neither model.tar.gz nor an unpacked model artifact"):
        evaluate.main(evaluate.parse_args(["--model-dir", str(tmp_path), "--test-dir", str(tmp_path),
                                           "--output-dir", str(tmp_path / "out")]))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed: int) -> None:
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    classes = ["A", "B", "C", "D"]
    y_true = list(rng.choice(classes[:3], size=40))
    y_pred = list(rng.choice(classes, size=40))

    matrix = confusion_counts(y_true, y_pred, classes)

    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y_true, y_pred, labels=classes))
    assert accuracy(matrix) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert balanced_accuracy(matrix) == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    assert weighted_f1(matrix) == pytest.approx(sk.f1_score(y_true, y_pred, average="weighted", zero_division=0))


def test_baseline_uses_the_train_distribution_not_the_test_one() -> None:
    baseline = majority_baseline({"Normal": 10, "Asthma": 4}, ["Asthma", "Asthma", "Normal"])

    assert baseline == {"majority_class": "Normal", "accuracy": pytest.approx(1 / 3)}


def test_evaluation_report_has_the_design_form_and_rejects_unknown_labels() -> None:
    report = evaluation_report(["A", "B", "B"], ["A", "B", "A"], ["A", "B", "C"],
                               train_label_counts={"B": 5, "A": 2}, test_patients=2)

    assert json_get(report, ACCURACY_JSON_PATH) == pytest.approx(2 / 3)
    assert json_get(report, BASELINE_JSON_PATH) == pytest.approx(2 / 3)
    assert report["multiclass_classification_metrics"]["confusion_matrix"] == {
        "A": {"A": 1, "B": 0, "C": 0}, "B": {"A": 1, "B": 1, "C": 0}, "C": {"A": 0, "B": 0, "C": 0}}
    with pytest.raises(ValueError, match="not among the model's classes"):
        evaluation_report(["Z"], ["A"], ["A"], train_label_counts={"A": 1}, test_patients=1)
