"""Patient-grouped, deterministic, shard-invariant dataset planning."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from steps.splits import (
    OTHER,
    Folds,
    assign_splits,
    group_rare_classes,
    patient_class,
    patient_key,
    plan_dataset,
)


def _rows(spec: dict[str, int], recordings: int = 3) -> list[dict]:
    """{diagnosis: n_patients} -> manifest rows with distinct audio hashes."""
    rows = []
    for diagnosis, n in spec.items():
        for p in range(n):
            for r in range(recordings):
                rid = f"{diagnosis[:3]}{p}_{r}"
                rows.append({"recording_id": rid, "patient_id": f"{diagnosis}-{p}", "diagnosis": diagnosis, "sha256": rid})
    return rows


def test_patient_key_is_stable_and_seeded() -> None:
    assert patient_key("kauh_1", 42) == patient_key("kauh_1", 42)
    assert 0 <= patient_key("kauh_1", 42) < 1
    assert patient_key("kauh_1", 42) != patient_key("kauh_1", 43)
    assert patient_key("kauh_1", 42) != patient_key("kauh_2", 42)


def test_splits_are_patient_disjoint_and_near_70_15_15() -> None:
    plan = plan_dataset(_rows({"Normal": 200, "Asthma": 100}), min_subjects_per_class=2, seed=42)

    split_of_patient: dict[str, set[str]] = {}
    for rec in plan.recordings:
        split_of_patient.setdefault(rec.patient_id, set()).add(rec.split)
    assert all(len(s) == 1 for s in split_of_patient.values())
    fractions = Counter(next(iter(s)) for s in split_of_patient.values())
    assert fractions == {"train": 210, "validation": 45, "test": 45}


def test_plan_is_deterministic_and_independent_of_row_order() -> None:
    rows = _rows({"Normal": 10, "Asthma": 7, "COPD": 4})
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)

    first = {r.recording_id: r.split for r in plan_dataset(rows, min_subjects_per_class=2, seed=1).recordings}
    again = {r.recording_id: r.split for r in plan_dataset(shuffled, min_subjects_per_class=2, seed=1).recordings}
    other_seed = {r.recording_id: r.split for r in plan_dataset(rows, min_subjects_per_class=2, seed=2).recordings}

    assert first == again
    assert first != other_seed


def test_small_classes_still_reach_test_and_validation() -> None:
    splits = assign_splits({"a1": "A", "a2": "A", "b1": "B", "b2": "B", "b3": "B", "c1": "C"}, seed=0)

    by_class = {cls: Counter(splits[p] for p in splits if p.startswith(cls.lower())) for cls in "ABC"}
    assert by_class["A"] == {"train": 1, "test": 1}
    assert by_class["B"] == {"train": 1, "validation": 1, "test": 1}
    assert by_class["C"] == {"train": 1}


def test_rare_diagnoses_are_grouped_into_other_by_distinct_patients() -> None:
    pairs = [("p1", "Asthma"), ("p1", "Asthma"), ("p2", "Asthma"), ("p3", "URTI"), ("p3", "URTI"), ("p4", "BRON")]

    assert group_rare_classes(pairs, 2) == {"Asthma": "Asthma", "BRON": OTHER, "URTI": OTHER}
    assert group_rare_classes(pairs, 1) == {"Asthma": "Asthma", "BRON": "BRON", "URTI": "URTI"}


def test_patient_class_is_majority_label_with_stable_ties() -> None:
    assert patient_class(["COPD", "Asthma", "COPD"]) == "COPD"
    assert patient_class(["COPD", "Asthma"]) == "Asthma"


def test_conflicting_duplicate_audio_is_dropped_everywhere_and_reported() -> None:
    rows = _rows({"Normal": 4, "Asthma": 4}, recordings=1)
    rows.append({"recording_id": "BP100", "patient_id": "kauh_100", "diagnosis": "Normal", "sha256": "AB"})
    rows.append({"recording_id": "BP101", "patient_id": "kauh_101", "diagnosis": "Asthma", "sha256": "ab"})
    rows.append({"recording_id": "BP9", "patient_id": "kauh_9", "diagnosis": "Asthma", "sha256": "cd"})
    rows.append({"recording_id": "DP9", "patient_id": "kauh_9", "diagnosis": "Asthma", "sha256": "cd"})

    plan = plan_dataset(rows, min_subjects_per_class=2, seed=0)

    used = {r.recording_id for r in plan.recordings}
    reasons = {d.recording_id: d.reason for d in plan.dropped}
    assert reasons == {"BP100": "conflicting_duplicate", "BP101": "conflicting_duplicate", "DP9": "duplicate"}
    assert "BP9" in used and not {"BP100", "BP101", "DP9"} & used


def test_unlabelled_and_invalid_rows_end_in_exactly_one_place() -> None:
    rows = _rows({"Normal": 3}, recordings=1) + [
        {"recording_id": "u1", "patient_id": "x", "diagnosis": "", "sha256": "u1"},
        {"recording_id": "", "patient_id": "y", "diagnosis": "Normal", "sha256": "e"},
        {"recording_id": "../evil", "patient_id": "z", "diagnosis": "Normal", "sha256": "f"},
        {"recording_id": "Nor0_0", "patient_id": "Normal-0", "diagnosis": "Normal", "sha256": "g"},
    ]

    plan = plan_dataset(rows, min_subjects_per_class=1, seed=0)

    assert plan.unlabelled == 1
    assert sorted(d.reason for d in plan.dropped) == ["duplicate_recording_id", "invalid_row", "invalid_row"]
    assert len(plan.recordings) == 3
    assert len(plan.recordings) + len(plan.dropped) + plan.unlabelled == len(rows)


@pytest.mark.parametrize("seed", [0, 7, 42])
def test_every_shard_computes_the_same_plan_from_the_full_manifest(seed: int) -> None:
    """Shard invariance: the plan never looks at audio, so each instance's plan is the same object."""
    rows = _rows({"Normal": 9, "Asthma": 6, "COPD": 3, "URTI": 1})
    plans = [plan_dataset(list(rows), min_subjects_per_class=2, seed=seed) for _ in range(2)]

    assert [(r.recording_id, r.label, r.split) for r in plans[0].recordings] == [
        (r.recording_id, r.label, r.split) for r in plans[1].recordings
    ]
    assert plans[0].counts() == plans[1].counts()
    assert plans[0].classes == ["Asthma", "COPD", "Normal", OTHER]


def _folds_of(rows: list[dict], seed: int, count: int) -> list[dict[str, str]]:
    """patient -> split for every test fold of a `count`-fold plan."""
    return [
        {r.patient_id: r.split for r in plan_dataset(rows, min_subjects_per_class=2, seed=seed,
                                                     folds=Folds(count, k)).recordings}
        for k in range(count)
    ]


def test_cross_validation_tests_every_patient_exactly_once_stratified() -> None:
    rows = _rows({"Normal": 24, "Asthma": 22, "Heart failure": 12, "COPD": 6})
    plans = _folds_of(rows, seed=1, count=5)

    tested = [p for plan in plans for p, split in plan.items() if split == "test"]
    assert sorted(tested) == sorted({r["patient_id"] for r in rows})
    for plan in plans:
        per_class = Counter((p.split("-")[0], s) for p, s in plan.items())
        assert 2 <= per_class["Heart failure", "test"] <= 3
        assert per_class["Heart failure", "validation"] == 2
        assert all(per_class[c, "train"] > 0 for c in ("Normal", "Asthma", "Heart failure", "COPD"))


def test_cross_validation_folds_depend_on_the_seed_not_the_row_order() -> None:
    rows = _rows({"Normal": 10, "Asthma": 7})
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)

    assert _folds_of(rows, seed=1, count=3) == _folds_of(shuffled, seed=1, count=3)
    assert _folds_of(rows, seed=1, count=3) != _folds_of(rows, seed=2, count=3)


@pytest.mark.parametrize(("count", "test"), [(1, 0), (5, 5), (5, -1)])
def test_impossible_folds_are_refused(count: int, test: int) -> None:
    with pytest.raises(ValueError, match="folds"):
        Folds(count, test)
