"""Model quality on the real recordings (../shared/data/lung-sounds: KAUH + ICBHI), for docs/model-quality.md.

Runs the pipeline's own three steps (preprocess -> train -> evaluate, in-process, same code as the
jobs) on a manifest built from the dataset folder, for two tasks:
- "diagnosis": diagnoses grouped by --min-subjects-per-class (rare ones become "Other");
- "normal_vs_abnormal": Normal vs every other diagnosis.
ICBHI's "Healthy" is the same clinical class as KAUH's "Normal" and is mapped to it.

Protocol: patient-grouped stratified k-fold cross-validation (Preprocess --folds K --test-fold k),
repeated for each seed, so every patient is tested once per seed; with ~80 patients one split's ~12
test patients move accuracy by +/-0.1, pooling all folds does not. On every fold the reference
model (steps.mfcc_baseline: MFCC statistics + logistic regression, trained on the fold's train +
validation recordings) is scored on the same test recordings, so the comparison is paired.

    python -m steps.real_data_report [--folds 5] [--seeds 1 2] [--members N] [--random-crops 0|1] [--out report.json]

--members / --random-crops go to train.py, so an earlier model configuration can be re-measured the same way.

The manifest, audio links and outputs go to a temporary folder outside the repository.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import tempfile
from pathlib import Path

import numpy as np

import steps
from steps import evaluate, mfcc_baseline, preprocess, train
from steps.datasets import file_sha256, load_dataset
from steps.metrics import accuracy, balanced_accuracy, evaluation_report, label_counts
from steps.model import TrainingConfig

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(steps.__file__).resolve().parents[2] / "shared" / "data" / "lung-sounds"
SAME_AS_NORMAL = {"Healthy": "Normal"}
TASKS = ("diagnosis", "normal_vs_abnormal")
MANIFEST_COLUMNS = ["recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="one k-fold repeat per seed")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--min-subjects-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--members", type=int, default=TrainingConfig.members, help="train.py --members")
    parser.add_argument("--random-crops", type=int, choices=(0, 1), default=int(TrainingConfig.random_crops),
                        help="train.py --random-crops")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON summary here too")
    return parser.parse_args(argv)


def task_label(diagnosis: str, task: str) -> str:
    diagnosis = SAME_AS_NORMAL.get(diagnosis, diagnosis)
    if task == "normal_vs_abnormal":
        return "Normal" if diagnosis == "Normal" else "Abnormal"
    return diagnosis


def write_inputs(data_dir: Path, work: Path, task: str) -> tuple[Path, Path]:
    """A trigger-style manifest and the raw/audio/<dataset>/<recording_id>.wav layout (symlinks)."""
    frame = load_dataset(data_dir)
    audio_dir, manifest_dir = work / "audio", work / f"manifest-{task}"
    manifest_dir.mkdir(parents=True, exist_ok=True)
    with (manifest_dir / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in frame.itertuples():
            dataset = str(row.source).lower()
            target = audio_dir / dataset / f"{row.recording_id}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to((data_dir / row.file).resolve())
            writer.writerow({
                "recording_id": row.recording_id,
                "patient_id": row.patient_id,
                "diagnosis": task_label(row.diagnosis, task) if row.diagnosis else "",
                "audio_uri": f"s3://local/raw/audio/{dataset}/{row.recording_id}.wav",
                "sha256": file_sha256(data_dir / row.file),
                "dataset": dataset,
            })
    return manifest_dir, audio_dir


def run_fold(manifest_dir: Path, audio_dir: Path, out: Path, *, seed: int, folds: int, fold: int,
             min_subjects: int, train_args: list[str]) -> dict:
    """preprocess -> train -> evaluate with fold `fold` as the test split; returns evaluation.json and the plan."""
    report = preprocess.main(preprocess.parse_args([
        "--manifest-dir", str(manifest_dir), "--audio-dir", str(audio_dir), "--output-dir", str(out / "splits"),
        "--resource-config", str(out / "none.json"), "--min-subjects-per-class", str(min_subjects),
        "--seed", str(seed), "--folds", str(folds), "--test-fold", str(fold)]))
    train.main(train.parse_args([
        *train_args, "--seed", str(seed), "--sm-model-dir", str(out / "model"),
        "--train", str(out / "splits" / "train"), "--validation", str(out / "splits" / "validation"),
        "--output-data-dir", str(out / "train-output")]))
    evaluation = evaluate.main(evaluate.parse_args([
        "--model-dir", str(out / "model"), "--test-dir", str(out / "splits" / "test"),
        "--output-dir", str(out / "evaluation")]))
    return {"seed": seed, "fold": fold, "evaluation": evaluation, "planned": report["planned"],
            "dropped": report["dropped"], "rejected": report["rejected"]}


def split_recordings(folder: Path) -> list[tuple[str, str, str]]:
    """(recording_id, label, patient_id) of a Preprocess split folder."""
    rows = []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as npz:
            rows.append((str(npz["recording_id"]), str(npz["label"]), str(npz["patient_id"])))
    return rows


def reference_fold(splits_dir: Path, wav_of: dict[str, Path], cache: dict[str, np.ndarray]) -> dict:
    """The MFCC + logistic-regression reference on the fold's own recordings: evaluation.json's shape."""
    def features(rows):
        for rid, _, _ in rows:
            if rid not in cache:
                cache[rid] = mfcc_baseline.mfcc_statistics(wav_of[rid])
        return np.stack([cache[rid] for rid, _, _ in rows])

    fit_rows = split_recordings(splits_dir / "train") + split_recordings(splits_dir / "validation")
    test_rows = split_recordings(splits_dir / "test")
    classes = json.loads((splits_dir / "train" / preprocess.LABELS_FILENAME).read_text())
    predicted = mfcc_baseline.fit_predict(features(fit_rows), [label for _, label, _ in fit_rows], features(test_rows))
    return evaluation_report(
        [label for _, label, _ in test_rows], predicted, classes,
        train_label_counts=label_counts([label for _, label, _ in fit_rows]),
        test_patients=len({patient for _, _, patient in test_rows}),
    )


def confusion(evaluation: dict) -> np.ndarray:
    matrix = evaluation["multiclass_classification_metrics"]["confusion_matrix"]
    classes = evaluation["classes"]
    return np.array([[matrix[t][p] for p in classes] for t in classes])


def stats(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 3),
            "std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
            "per_run": [round(v, 3) for v in values]}


def model_summary(evaluations: list[dict], seeds: list[int]) -> dict:
    """Per-fold mean +/- std, and pooled over all folds of a seed (every patient tested once), averaged over seeds."""
    pooled = {seed: sum(confusion(e) for e in evaluations if e["seed"] == seed) for seed in seeds}
    return {
        "accuracy": stats([accuracy(confusion(e)) for e in evaluations]),
        "balanced_accuracy": stats([balanced_accuracy(confusion(e)) for e in evaluations]),
        "pooled_accuracy": round(statistics.mean(accuracy(m) for m in pooled.values()), 3),
        "pooled_balanced_accuracy": round(statistics.mean(balanced_accuracy(m) for m in pooled.values()), 3),
        "pooled_confusion_matrix": sum(pooled.values()).tolist(),
    }


def summarise(runs: list[dict], seeds: list[int]) -> dict:
    """The CNN and the reference on the same folds, the majority baseline, and the paired differences."""
    cnn = [{**r["evaluation"], "seed": r["seed"]} for r in runs]
    reference = [{**r["reference"], "seed": r["seed"]} for r in runs]
    differences = [accuracy(confusion(c)) - accuracy(confusion(b)) for c, b in zip(cnn, reference)]
    baseline_hits = sum(r["evaluation"]["baseline"]["accuracy"] * r["evaluation"]["test_recordings"] for r in runs)
    return {
        "classes": runs[0]["evaluation"]["classes"],
        "cnn": model_summary(cnn, seeds),
        "reference_mfcc_logreg": model_summary(reference, seeds),
        "cnn_minus_reference_accuracy": {**stats(differences), "cnn_better": sum(d > 0 for d in differences),
                                         "ties": sum(d == 0 for d in differences), "runs": len(differences)},
        "majority_baseline": {**stats([r["evaluation"]["baseline"]["accuracy"] for r in runs]),
                              "pooled": round(baseline_hits / sum(r["evaluation"]["test_recordings"] for r in runs), 3)},
        "test_patients": [r["evaluation"]["test_patients"] for r in runs],
        "test_recordings": [r["evaluation"]["test_recordings"] for r in runs],
        "dropped": sorted({d["recording_id"] for r in runs for d in r["dropped"]}),
        "rejected": sorted({d["recording_id"] for r in runs for d in r["rejected"]}),
    }


def run_task(args: argparse.Namespace, work: Path, task: str) -> dict:
    manifest_dir, audio_dir = write_inputs(args.data_dir, work, task)
    wav_of = {path.stem: path for path in audio_dir.glob("*/*.wav")}
    cache: dict[str, np.ndarray] = {}
    train_args = ["--epochs", str(args.epochs), "--members", str(args.members), "--random-crops", str(args.random_crops)]
    runs = []
    for seed in args.seeds:
        for fold in range(args.folds):
            out = work / task / f"seed-{seed}" / f"fold-{fold}"
            run = run_fold(manifest_dir, audio_dir, out, seed=seed, folds=args.folds, fold=fold,
                           min_subjects=args.min_subjects_per_class, train_args=train_args)
            run["reference"] = reference_fold(out / "splits", wav_of, cache)
            runs.append(run)
    return {"protocol": {"folds": args.folds, "seeds": args.seeds, "min_subjects_per_class": args.min_subjects_per_class,
                         "train": train_args},
            **summarise(runs, args.seeds)}


def main(args: argparse.Namespace | None = None) -> dict:
    args = args or parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="samay-real-") as tmp:
        work = args.work_dir or Path(tmp)
        summary = {}
        for task in args.tasks:
            summary[task] = run_task(args, work, task)
            print(json.dumps({task: summary[task]}, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
