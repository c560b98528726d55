"""Dataset planning: which manifest rows are used, under which class, in which patient-grouped split.

Everything here is a pure function of the FULL manifest (and the seed). That is what makes a
Preprocess job sharded over several instances agree with a single instance: SageMaker shards only
the audio (`ShardedByS3Key`); every instance reads the whole manifest (`FullyReplicated`), so every
instance computes the same plan and then extracts features for the recordings whose audio it holds.
Audio that later fails validation does not change the plan (a shard cannot know about the others'
audio), it only drops that recording.

Split rule. Each patient gets a stable pseudo-random key, sha256("<seed>:<patient_id>") mapped to
[0, 1). Within each class (a patient's class is its most frequent label), patients are ranked by
key; the lowest ~15% go to test, the next ~15% to validation, the rest to train. Ranking rather
than thresholding the key gives small datasets a guarantee pure thresholds cannot: every class with
at least 2 patients is present in test, every class with at least 3 also in validation, and train
always keeps at least one patient of every class. No patient is ever in two splits.

Cross-validation (`folds` > 0). The same ranking deals each class's patients round-robin into
`folds` folds (rank % folds), so folds are stratified and every patient is in exactly one fold;
fold `test_fold` is the test split, and of the remaining patients the lowest-ranked ~15% of each
class are validation (for early stopping) and the rest train. Running test_fold 0..folds-1 tests
every patient exactly once, which is how docs/model-quality.md compares models on ~80 patients.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

OTHER = "Other"
SPLITS = ("train", "validation", "test")
TEST_FRACTION = 0.15
VALIDATION_FRACTION = 0.15


def patient_key(patient_id: str, seed: int) -> float:
    """Stable pseudo-random number in [0, 1) for a patient (same on every machine and Python run)."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _split_sizes(n_patients: int) -> tuple[int, int]:
    """(n_test, n_validation) for a class of n patients, keeping at least one patient for train."""
    n_test = max(1, round(n_patients * TEST_FRACTION)) if n_patients >= 2 else 0
    n_validation = max(1, round(n_patients * VALIDATION_FRACTION)) if n_patients >= 3 else 0
    return n_test, n_validation


@dataclass(frozen=True)
class Folds:
    """K-fold cross-validation: `count` folds by patient, fold `test` is the test split."""

    count: int
    test: int

    def __post_init__(self) -> None:
        if self.count < 2 or not 0 <= self.test < self.count:
            raise ValueError(f"need folds >= 2 and 0 <= test fold < folds, got folds={self.count}, test fold={self.test}")


def _assign_ranked(ranked: list[str], splits: dict[str, str]) -> None:
    n_test, n_validation = _split_sizes(len(ranked))
    for rank, patient in enumerate(ranked):
        if rank < n_test:
            splits[patient] = "test"
        elif rank < n_test + n_validation:
            splits[patient] = "validation"
        else:
            splits[patient] = "train"


def _assign_fold(ranked: list[str], folds: Folds, splits: dict[str, str]) -> None:
    rest = []
    for rank, patient in enumerate(ranked):
        if rank % folds.count == folds.test:
            splits[patient] = "test"
        else:
            rest.append(patient)
    _, n_validation = _split_sizes(len(ranked))
    n_validation = min(n_validation, len(rest) - 1)
    for rank, patient in enumerate(rest):
        splits[patient] = "validation" if rank < n_validation else "train"


def assign_splits(patient_classes: Mapping[str, str], seed: int, folds: Folds | None = None) -> dict[str, str]:
    """patient_id -> "train" | "validation" | "test", stratified by class, by rank of patient_key."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for patient, cls in patient_classes.items():
        by_class[cls].append(patient)
    splits: dict[str, str] = {}
    for patients in by_class.values():
        ranked = sorted(patients, key=lambda p: (patient_key(p, seed), p))
        if folds is None:
            _assign_ranked(ranked, splits)
        else:
            _assign_fold(ranked, folds, splits)
    return splits


def group_rare_classes(patient_diagnoses: Iterable[tuple[str, str]], min_subjects: int) -> dict[str, str]:
    """diagnosis -> class: diagnoses seen in fewer than min_subjects distinct patients become "Other"."""
    patients: dict[str, set[str]] = defaultdict(set)
    for patient, diagnosis in patient_diagnoses:
        patients[diagnosis].add(patient)
    return {d: (d if len(p) >= min_subjects else OTHER) for d, p in sorted(patients.items())}


def patient_class(labels: Iterable[str]) -> str:
    """A patient's class for stratification: its most frequent label (ties: alphabetically first)."""
    counts = Counter(labels)
    return min(counts, key=lambda label: (-counts[label], label))


@dataclass
class Dropped:
    """A manifest row left out of the dataset, with a machine-readable reason."""

    recording_id: str
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return {"recording_id": self.recording_id, "reason": self.reason, "detail": self.detail}


@dataclass
class PlannedRecording:
    recording_id: str
    patient_id: str
    diagnosis: str
    label: str
    split: str
    row: dict


@dataclass
class DatasetPlan:
    """The shard-invariant outcome of planning: used recordings, dropped rows, classes."""

    recordings: list[PlannedRecording]
    classes: list[str]
    class_of_diagnosis: dict[str, str]
    dropped: list[Dropped] = field(default_factory=list)
    unlabelled: int = 0

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """{split: {class: {"recordings": n, "patients": m}}} as planned from the manifest."""
        recordings: Counter = Counter()
        patients: dict[tuple[str, str], set[str]] = defaultdict(set)
        for rec in self.recordings:
            recordings[rec.split, rec.label] += 1
            patients[rec.split, rec.label].add(rec.patient_id)
        return {
            split: {
                cls: {"recordings": recordings[split, cls], "patients": len(patients[split, cls])}
                for cls in self.classes
            }
            for split in SPLITS
        }


def _drop_duplicates(rows: list[dict]) -> tuple[list[dict], list[Dropped]]:
    """Drop repeated recording ids and audio (same sha256) seen twice.

    The same audio under two patients or two labels cannot be trusted (which label is right?) and
    would leak across splits: every copy is dropped ("conflicting_duplicate"). The same audio twice
    for one patient with one label keeps the first recording id and drops the rest ("duplicate").
    """
    kept, dropped, seen_ids = [], [], set()
    for row in rows:
        if row["recording_id"] in seen_ids:
            dropped.append(Dropped(row["recording_id"], "duplicate_recording_id", "recording_id listed twice"))
        else:
            seen_ids.add(row["recording_id"])
            kept.append(row)
    by_hash: dict[str, list[dict]] = defaultdict(list)
    for row in kept:
        if row.get("sha256"):
            by_hash[row["sha256"].lower()].append(row)
    drop: dict[str, Dropped] = {}
    for group in by_hash.values():
        if len(group) < 2:
            continue
        group = sorted(group, key=lambda r: r["recording_id"])
        ids = [r["recording_id"] for r in group]
        if len({r["patient_id"] for r in group}) > 1 or len({r["diagnosis"] for r in group}) > 1:
            detail = f"identical audio under different patients or labels: {', '.join(ids)}"
            drop.update({i: Dropped(i, "conflicting_duplicate", detail) for i in ids})
        else:
            drop.update({i: Dropped(i, "duplicate", f"identical audio to {ids[0]}") for i in ids[1:]})
    dropped.extend(drop[r["recording_id"]] for r in kept if r["recording_id"] in drop)
    return [r for r in kept if r["recording_id"] not in drop], dropped


def plan_dataset(
    rows: Iterable[Mapping[str, str]], *, min_subjects_per_class: int, seed: int, folds: Folds | None = None
) -> DatasetPlan:
    """Plan the dataset from ALL manifest rows (never a shard of them: see the module docstring)."""
    valid, dropped, unlabelled = [], [], 0
    for raw in rows:
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not row.get("recording_id") or not row.get("patient_id") or "/" in row["recording_id"]:
            dropped.append(Dropped(row.get("recording_id", ""), "invalid_row", "missing patient_id or bad recording_id"))
        elif not row.get("diagnosis"):
            unlabelled += 1
        else:
            valid.append(row)
    valid, duplicates = _drop_duplicates(valid)
    dropped.extend(duplicates)

    class_of = group_rare_classes(((r["patient_id"], r["diagnosis"]) for r in valid), min_subjects_per_class)
    labels_of: dict[str, list[str]] = defaultdict(list)
    for row in valid:
        labels_of[row["patient_id"]].append(class_of[row["diagnosis"]])
    split_of = assign_splits({p: patient_class(labels) for p, labels in labels_of.items()}, seed, folds)
    recordings = [
        PlannedRecording(
            recording_id=row["recording_id"],
            patient_id=row["patient_id"],
            diagnosis=row["diagnosis"],
            label=class_of[row["diagnosis"]],
            split=split_of[row["patient_id"]],
            row=row,
        )
        for row in valid
    ]
    classes = sorted(set(class_of.values()))
    logger.info("planned %d recordings in %d classes; %d dropped, %d unlabelled",
                len(recordings), len(classes), len(dropped), unlabelled)
    return DatasetPlan(recordings, classes, class_of, dropped, unlabelled)
