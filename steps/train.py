"""Train (SageMaker TensorFlow training job): feature splits -> model artifact (DESIGN 4.7).

Reads SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION (the Preprocess job's split folders), trains the
CNN of steps/model.py (--members of them, each with early stopping on the validation split only,
averaged into the one exported model), and writes the artifact into SM_MODEL_DIR and the fit
metrics into SM_OUTPUT_DATA_DIR. The test split is never read here. Hyperparameters arrive as
--epochs --batch-size --learning-rate --seed --patience --members --random-crops; the TensorFlow
estimator's --model_dir (an S3 checkpoint location) is accepted and ignored.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from steps.artifact import export_artifact
from steps.features import FeatureConfig
from steps.metrics import label_counts
from steps.model import TrainingConfig, average_models, build_model, fit, input_std, member_seed, set_seed

logger = logging.getLogger(__name__)


class TrainError(ValueError):
    """The training inputs cannot train a model; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    defaults = TrainingConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--members", type=int, default=defaults.members,
                        help="models (seeds seed, seed+1000, ...) averaged into the exported model")
    parser.add_argument("--random-crops", type=int, choices=(0, 1), default=int(defaults.random_crops),
                        help="1: train on random crops of each recording; 0: on the fixed windows")
    parser.add_argument("--model_dir", "--model-dir", dest="checkpoint_dir", default=None,
                        help="passed by the TensorFlow estimator; unused")
    parser.add_argument("--sm-model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--train", type=Path, default=Path(env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    parser.add_argument("--validation", type=Path,
                        default=Path(env("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")))
    parser.add_argument("--output-data-dir", type=Path,
                        default=Path(env("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")))
    return parser.parse_args(argv)


def load_split(folder: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(windows, class index per window, label per recording, recording index per window) from a split folder of <recording>.npz."""
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise TrainError(f"no recordings (*.npz) in {folder}")
    index = {c: i for i, c in enumerate(classes)}
    windows, targets, labels, recording = [], [], [], []
    for path in files:
        with np.load(path) as npz:
            label = str(npz["label"])
            if label not in index:
                raise TrainError(f"{path.name}: label {label!r} not in labels.json")
            windows.append(npz["windows"])
            targets.append(np.full(npz["windows"].shape[0], index[label], dtype=np.int64))
            recording.append(np.full(npz["windows"].shape[0], len(labels), dtype=np.int64))
            labels.append(label)
    return np.concatenate(windows), np.concatenate(targets), labels, np.concatenate(recording)


def read_split_metadata(folder: Path) -> tuple[list[str], FeatureConfig]:
    try:
        classes = json.loads((folder / "labels.json").read_text())
        return classes, FeatureConfig.load(folder)
    except FileNotFoundError as err:
        raise TrainError(f"{folder} lacks the Preprocess job's labels.json/features.json ({err.filename})") from err


def train(args: argparse.Namespace) -> dict:
    """Fit and export; returns the training summary stored in the artifact."""
    config = TrainingConfig(args.epochs, args.batch_size, args.learning_rate, args.seed, args.patience,
                            args.members, bool(args.random_crops))
    if config.members < 1:
        raise TrainError("--members must be at least 1")
    classes, features = read_split_metadata(args.train)
    if read_split_metadata(args.validation) != (classes, features):
        raise TrainError("train and validation splits disagree on labels.json or features.json")
    x_train, y_train, train_labels, r_train = load_split(args.train, classes)
    x_val, y_val, val_labels, _ = load_split(args.validation, classes)
    logger.info("train: %d windows of %d recordings; validation: %d windows of %d recordings",
                len(y_train), len(train_labels), len(y_val), len(val_labels))
    models, histories, std = [], [], input_std(x_train)
    for member in range(config.members):
        seed = member_seed(config.seed, member)
        set_seed(seed)
        member_model = build_model(x_train.shape[1:], len(classes), std=std,
                                   learning_rate=config.learning_rate, name=f"samay_lung_cnn_{member}")
        histories.append(fit(member_model, (x_train, y_train, r_train), (x_val, y_val), len(classes), config,
                             hop=features.frames_per_window_hop, seed=seed).history)
        models.append(member_model)
    model = average_models(models, x_train.shape[1:])
    history = histories[0]  # member 0 (seed = --seed): the top-level fit summary; every member under "members"
    best = int(np.argmin(history["val_loss"]))
    summary = {
        "label_counts": label_counts(train_labels),
        "validation_label_counts": label_counts(val_labels),
        "train_windows": int(len(y_train)),
        "validation_windows": int(len(y_val)),
        "epochs_run": len(history["val_loss"]),
        "best_epoch": best + 1,
        "best_val_loss": float(history["val_loss"][best]),
        "best_val_window_accuracy": float(history["val_accuracy"][best]),
        "members": [{"seed": member_seed(config.seed, m), "epochs_run": len(h["val_loss"]),
                     "best_epoch": int(np.argmin(h["val_loss"])) + 1, "best_val_loss": float(min(h["val_loss"]))}
                    for m, h in enumerate(histories)],
        "hyperparameters": asdict(config),
    }
    export_artifact(model, args.sm_model_dir, classes, features, summary)
    args.output_data_dir.mkdir(parents=True, exist_ok=True)
    (args.output_data_dir / "metrics.json").write_text(json.dumps(
        {**summary, "history": {k: [float(v) for v in vs] for k, vs in history.items()},
         "member_histories": [{k: [float(v) for v in vs] for k, vs in h.items()} for h in histories]},
        indent=2) + "\n")
    return summary


def main(args: argparse.Namespace | None = None) -> dict:
    args = args or parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = train(args)
    except TrainError as err:
        logger.error("train failed: %s", err)
        sys.exit(f"train failed: {err}")
    logger.info("best epoch %d: val_loss=%.4f val_window_accuracy=%.4f", summary["best_epoch"],
                summary["best_val_loss"], summary["best_val_window_accuracy"])
    return summary


if __name__ == "__main__":
    main()
