"""Evaluate (SageMaker Processing job): model.tar.gz + test split -> evaluation.json (DESIGN 4.6).

Scores each test recording as the mean of its windows' probabilities, through the artifact's
SavedModel serving signature (what the endpoint serves), and compares with the majority-class
baseline: the most frequent class of the TRAIN split (recorded in the artifact) predicted for
every test recording.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from steps.artifact import (
    LABELS_FILE,
    TRAINING_FILE,
    ArtifactError,
    extract_model_tarball,
    read_artifact_json,
    savedmodel_dir,
)
from steps.metrics import ACCURACY_JSON_PATH, evaluation_report, json_get

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"


class EvaluateError(ValueError):
    """The evaluation inputs are unusable; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    return parser.parse_args(argv)


def load_recordings(test_dir: Path) -> list[dict]:
    files = sorted(test_dir.glob("*.npz"))
    if not files:
        raise EvaluateError(f"no test recordings (*.npz) in {test_dir}")
    recordings = []
    for path in files:
        with np.load(path) as npz:
            recordings.append({"windows": npz["windows"], "label": str(npz["label"]),
                               "patient_id": str(npz["patient_id"])})
    return recordings


def recording_probabilities(serve, windows: np.ndarray) -> np.ndarray:
    """Mean of the window probabilities from the serving signature (as the endpoint aggregates)."""
    (input_name,) = serve.structured_input_signature[1]
    outputs = serve(**{input_name: windows})
    return np.asarray(next(iter(outputs.values()))).mean(axis=0)


def evaluate(model_dir: Path, test_dir: Path, work_dir: Path) -> dict:
    import tensorflow as tf

    artifact_dir = extract_model_tarball(model_dir, work_dir)
    classes = read_artifact_json(artifact_dir, LABELS_FILE)
    training = read_artifact_json(artifact_dir, TRAINING_FILE)
    test_classes = json.loads((test_dir / LABELS_FILE).read_text()) if (test_dir / LABELS_FILE).is_file() else classes
    if test_classes != classes:
        raise EvaluateError(f"test split classes {test_classes} differ from the model's {classes}")
    serve = tf.saved_model.load(str(savedmodel_dir(artifact_dir))).signatures["serving_default"]
    recordings = load_recordings(test_dir)
    y_true, y_pred = [], []
    for rec in recordings:
        probabilities = recording_probabilities(serve, rec["windows"])
        y_true.append(rec["label"])
        y_pred.append(classes[int(np.argmax(probabilities))])
    return evaluation_report(
        y_true, y_pred, classes,
        train_label_counts=training["label_counts"],
        test_patients=len({r["patient_id"] for r in recordings}),
    )


def main(args: argparse.Namespace | None = None) -> dict:
    args = args or parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with tempfile.TemporaryDirectory() as work:
            report = evaluate(args.model_dir, args.test_dir, Path(work))
    except (ArtifactError, EvaluateError) as err:
        logger.error("evaluate failed: %s", err)
        sys.exit(f"evaluate failed: {err}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / EVALUATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
    logger.info("test accuracy %.3f (majority baseline %.3f) on %d recordings of %d patients",
                json_get(report, ACCURACY_JSON_PATH), report["baseline"]["accuracy"],
                report["test_recordings"], report["test_patients"])
    return report


if __name__ == "__main__":
    main()
