"""Preprocess (SageMaker Processing job): manifest + audio -> patient-grouped feature splits + report.

Runs unchanged in a SageMaker container (paths default to /opt/ml/...), under the local job runner,
and from tests (paths as arguments). With several instances the audio arrives sharded
(ShardedByS3Key) while every instance reads the full manifest, so all instances plan the same
splits (see steps/splits.py) and each writes the recordings whose audio it holds.

Every labelled manifest row ends in exactly one place of this host's report: written to a split,
rejected (bad audio, missing audio, bad audio_uri; reason codes), skipped (audio in another
shard), or dropped by the plan (duplicates, invalid rows).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from steps.audio import AudioError
from steps.features import FeatureConfig, extract_windows
from steps.splits import SPLITS, DatasetPlan, Folds, PlannedRecording, plan_dataset

logger = logging.getLogger(__name__)

AUDIO_PREFIX = "raw/audio/"
LABELS_FILENAME = "labels.json"


class PreprocessError(ValueError):
    """The job's inputs cannot make a dataset (no manifest, too few patients); the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest-dir", type=Path, default=Path("/opt/ml/processing/input/manifest"))
    parser.add_argument("--audio-dir", type=Path, default=Path("/opt/ml/processing/input/audio"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--resource-config", type=Path, default=Path("/opt/ml/config/resourceconfig.json"))
    parser.add_argument("--min-subjects-per-class", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folds", type=int, default=0,
                        help="k-fold cross-validation by patient (0: one ~70/15/15 split); fold --test-fold is test")
    parser.add_argument("--test-fold", type=int, default=0)
    return parser.parse_args(argv)


def folds_of(args: argparse.Namespace) -> Folds | None:
    if not args.folds:
        return None
    try:
        return Folds(args.folds, args.test_fold)
    except ValueError as err:
        raise PreprocessError(str(err)) from err


def read_manifest(manifest_dir: Path) -> list[dict]:
    """Rows of the one *.csv in manifest_dir (the dataset manifest written by the trigger)."""
    candidates = sorted(manifest_dir.glob("*.csv")) if manifest_dir.is_dir() else []
    if len(candidates) != 1:
        raise PreprocessError(f"expected exactly one manifest *.csv in {manifest_dir}, found {len(candidates)}")
    with candidates[0].open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"recording_id", "patient_id", "diagnosis", "audio_uri"} - set(reader.fieldnames or [])
        if missing:
            raise PreprocessError(f"{candidates[0].name}: missing columns {sorted(missing)}")
        return list(reader)


def read_hosts(resource_config: Path) -> tuple[str, list[str]]:
    """(current_host, hosts) from SageMaker's resourceconfig.json; one host "algo-1" when absent (tests)."""
    if not resource_config.is_file():
        return "algo-1", ["algo-1"]
    config = json.loads(resource_config.read_text())
    return config["current_host"], list(config["hosts"])


def audio_path(audio_dir: Path, audio_uri: str) -> Path | None:
    """Local file for an s3://<bucket>/raw/audio/<key> uri: <audio_dir>/<key>; None if the uri is not one."""
    if AUDIO_PREFIX not in audio_uri:
        return None
    key = audio_uri.split(AUDIO_PREFIX, 1)[1]
    if not key or ".." in Path(key).parts or key.startswith("/"):
        return None
    return audio_dir / key


def write_split_metadata(output_dir: Path, plan: DatasetPlan, config: FeatureConfig) -> None:
    """features.json + labels.json in every split folder (identical on every shard)."""
    for split in SPLITS:
        folder = output_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        config.save(folder)
        (folder / LABELS_FILENAME).write_text(json.dumps(plan.classes) + "\n")


def write_recording(output_dir: Path, rec: PlannedRecording, windows: np.ndarray) -> Path:
    path = output_dir / rec.split / f"{rec.recording_id}.npz"
    np.savez(
        path,
        windows=np.ascontiguousarray(windows, dtype=np.float32),
        label=np.str_(rec.label),
        patient_id=np.str_(rec.patient_id),
        recording_id=np.str_(rec.recording_id),
    )
    return path


def process_recordings(
    plan: DatasetPlan, audio_dir: Path, output_dir: Path, config: FeatureConfig, *, sharded: bool
) -> dict:
    """Extract and write every planned recording whose audio this host holds; never raises on bad audio."""
    written: dict[tuple[str, str], list[PlannedRecording]] = defaultdict(list)
    windows_written: Counter = Counter()
    rejected, skipped = [], 0
    for rec in plan.recordings:
        path = audio_path(audio_dir, rec.row.get("audio_uri", ""))
        if path is None:
            rejected.append({"recording_id": rec.recording_id, "reason": "bad_audio_uri",
                             "detail": f"audio_uri is not below s3://<bucket>/{AUDIO_PREFIX}"})
            continue
        if not path.is_file():
            if sharded:
                skipped += 1
            else:
                rejected.append({"recording_id": rec.recording_id, "reason": "missing_audio",
                                 "detail": f"{path.name} not found in the audio input"})
            continue
        try:
            windows = extract_windows(path, config)
        except AudioError as err:
            rejected.append({"recording_id": rec.recording_id, "reason": err.reason, "detail": str(err)})
            continue
        write_recording(output_dir, rec, windows)
        written[rec.split, rec.label].append(rec)
        windows_written[rec.split, rec.label] += windows.shape[0]
    counts = {
        split: {
            cls: {
                "recordings": len(written[split, cls]),
                "patients": len({r.patient_id for r in written[split, cls]}),
                "windows": windows_written[split, cls],
            }
            for cls in plan.classes
        }
        for split in SPLITS
    }
    return {"counts": counts, "rejected": rejected, "skipped_other_shard": skipped}


def check_plan(plan: DatasetPlan) -> None:
    """Refuse a dataset that cannot give a train, a validation and a test split."""
    planned = plan.counts()
    empty = [s for s in SPLITS if sum(c["recordings"] for c in planned[s].values()) == 0]
    if empty:
        raise PreprocessError(
            f"{len(plan.recordings)} usable labelled recordings cannot fill the {', '.join(empty)} split(s): "
            "need at least one class with 3 or more patients"
        )


def main(args: argparse.Namespace | None = None) -> dict:
    """Plan from the full manifest, extract this shard's recordings, write splits and the report."""
    args = args or parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        plan = plan_dataset(read_manifest(args.manifest_dir), min_subjects_per_class=args.min_subjects_per_class,
                            seed=args.seed, folds=folds_of(args))
        check_plan(plan)
    except PreprocessError as err:
        logger.error("preprocess failed: %s", err)
        sys.exit(f"preprocess failed: {err}")
    host, hosts = read_hosts(args.resource_config)
    config = FeatureConfig()
    write_split_metadata(args.output_dir, plan, config)
    shard = process_recordings(plan, args.audio_dir, args.output_dir, config, sharded=len(hosts) > 1)
    report = {
        "host": host,
        "hosts": hosts,
        "classes": plan.classes,
        "class_of_diagnosis": plan.class_of_diagnosis,
        "planned": plan.counts(),
        "dropped": [d.to_dict() for d in plan.dropped],
        "unlabelled": plan.unlabelled,
        **shard,
    }
    report_dir = args.output_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"report-{host}.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info("host %s wrote %d recordings, rejected %d, skipped %d (other shard)", host,
                sum(c["recordings"] for s in shard["counts"].values() for c in s.values()),
                len(shard["rejected"]), shard["skipped_other_shard"])
    return report


if __name__ == "__main__":
    main()
