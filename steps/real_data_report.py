"""Model quality on the real recordings (../shared/data/lung-sounds: KAUH + ICBHI), for docs/model-quality.md.

Runs the pipeline's own three steps (preprocess -> train -> evaluate, in-process, same code as the
jobs) on a manifest built from the dataset folder, for two tasks:
- "diagnosis": diagnoses grouped by --min-subjects-per-class (rare ones become "Other");
- "normal_vs_abnormal": Normal vs every other diagnosis.
ICBHI's "Healthy" is the same clinical class as KAUH's "Normal" and is mapped to it.
One patient-grouped split is ~12 test patients, so each task is repeated over several split seeds
(each seed = a different patient split and model initialisation) and the mean and spread reported.

    python -m steps.real_data_report [--seeds 1 2 3 4 5] [--out report.json]

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

import steps
from steps import evaluate, preprocess, train
from steps.datasets import file_sha256, load_dataset

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(steps.__file__).resolve().parents[2] / "shared" / "data" / "lung-sounds"
SAME_AS_NORMAL = {"Healthy": "Normal"}
TASKS = ("diagnosis", "normal_vs_abnormal")
MANIFEST_COLUMNS = ["recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--min-subjects-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=40)
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


def run_once(manifest_dir: Path, audio_dir: Path, work: Path, *, seed: int, min_subjects: int, epochs: int) -> dict:
    """preprocess -> train -> evaluate for one split seed; returns evaluation.json plus the split counts."""
    out = work / f"seed-{seed}"
    report = preprocess.main(preprocess.parse_args([
        "--manifest-dir", str(manifest_dir), "--audio-dir", str(audio_dir), "--output-dir", str(out / "splits"),
        "--resource-config", str(out / "none.json"), "--min-subjects-per-class", str(min_subjects),
        "--seed", str(seed)]))
    train.main(train.parse_args([
        "--epochs", str(epochs), "--seed", str(seed), "--sm-model-dir", str(out / "model"),
        "--train", str(out / "splits" / "train"), "--validation", str(out / "splits" / "validation"),
        "--output-data-dir", str(out / "train-output")]))
    evaluation = evaluate.main(evaluate.parse_args([
        "--model-dir", str(out / "model"), "--test-dir", str(out / "splits" / "test"),
        "--output-dir", str(out / "evaluation")]))
    return {"seed": seed, "evaluation": evaluation, "planned": report["planned"],
            "dropped": report["dropped"], "rejected": report["rejected"]}


def summarise(runs: list[dict]) -> dict:
    def stats(values: list[float]) -> dict:
        return {"mean": round(statistics.mean(values), 3),
                "std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
                "per_seed": [round(v, 3) for v in values]}

    metrics = [r["evaluation"]["multiclass_classification_metrics"] for r in runs]
    return {
        "classes": runs[0]["evaluation"]["classes"],
        "accuracy": stats([m["accuracy"]["value"] for m in metrics]),
        "balanced_accuracy": stats([m["balanced_accuracy"]["value"] for m in metrics]),
        "weighted_f1": stats([m["weighted_f1"]["value"] for m in metrics]),
        "majority_baseline": stats([r["evaluation"]["baseline"]["accuracy"] for r in runs]),
        "test_patients": [r["evaluation"]["test_patients"] for r in runs],
        "test_recordings": [r["evaluation"]["test_recordings"] for r in runs],
        "pooled_accuracy": round(
            sum(sum(m["confusion_matrix"][c][c] for c in m["confusion_matrix"]) for m in metrics)
            / sum(r["evaluation"]["test_recordings"] for r in runs), 3),
        "dropped": sorted({d["recording_id"] for r in runs for d in r["dropped"]}),
        "rejected": sorted({d["recording_id"] for r in runs for d in r["rejected"]}),
    }


def main(args: argparse.Namespace | None = None) -> dict:
    args = args or parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="samay-real-") as tmp:
        work = args.work_dir or Path(tmp)
        summary = {}
        for task in args.tasks:
            manifest_dir, audio_dir = write_inputs(args.data_dir, work, task)
            runs = [run_once(manifest_dir, audio_dir, work / task, seed=seed,
                             min_subjects=args.min_subjects_per_class, epochs=args.epochs) for seed in args.seeds]
            summary[task] = summarise(runs)
            print(json.dumps({task: summary[task]}, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
