"""Recording-level classification metrics and the evaluation.json report (DESIGN 4.6).

Plain numpy (no scikit-learn), because the Evaluate job runs in a TensorFlow image; tests hold
these functions equal to scikit-learn's.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)

# The pipeline's JsonGet reads the gate's metric here; keep both sides on these constants.
ACCURACY_JSON_PATH = "multiclass_classification_metrics.accuracy.value"
BASELINE_JSON_PATH = "baseline.accuracy"


def confusion_counts(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """(k, k) counts: rows are true classes, columns predicted, in `classes` order."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[index[t], index[p]] += 1
    return matrix


def accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the classes present in the true labels (scikit-learn's definition)."""
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        return 0.0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def weighted_f1(matrix: np.ndarray) -> float:
    """Support-weighted mean of per-class F1 (F1 = 0 where precision and recall are both undefined or 0)."""
    support = matrix.sum(axis=1)
    if support.sum() == 0:
        return 0.0
    true_pos = np.diag(matrix).astype(float)
    denominator = support + matrix.sum(axis=0)
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)
    return float(np.sum(f1 * support) / support.sum())


def majority_baseline(train_label_counts: Mapping[str, int], y_true: Sequence[str]) -> dict:
    """Accuracy on the test labels of always predicting the TRAIN split's most frequent class."""
    if not train_label_counts:
        raise ValueError("no training label counts for the majority baseline")
    majority = min(train_label_counts, key=lambda c: (-train_label_counts[c], c))
    hits = sum(1 for t in y_true if t == majority)
    return {"majority_class": majority, "accuracy": hits / len(y_true) if y_true else 0.0}


def evaluation_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    *,
    train_label_counts: Mapping[str, int],
    test_patients: int,
) -> dict:
    """evaluation.json in SageMaker's model-quality form (DESIGN 4.6)."""
    unknown = (set(y_true) | set(y_pred)) - set(classes)
    if unknown:
        raise ValueError(f"labels not among the model's classes: {sorted(unknown)}")
    matrix = confusion_counts(y_true, y_pred, classes)
    return {
        "multiclass_classification_metrics": {
            "accuracy": {"value": accuracy(matrix), "standard_deviation": "NaN"},
            "balanced_accuracy": {"value": balanced_accuracy(matrix), "standard_deviation": "NaN"},
            "weighted_f1": {"value": weighted_f1(matrix), "standard_deviation": "NaN"},
            "confusion_matrix": {
                t: {p: int(matrix[i, j]) for j, p in enumerate(classes)} for i, t in enumerate(classes)
            },
        },
        "baseline": majority_baseline(train_label_counts, y_true),
        "classes": list(classes),
        "test_patients": test_patients,
        "test_recordings": len(y_true),
    }


def label_counts(labels: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(labels).items()))


def json_get(document: Mapping, path: str):
    """Follow a dotted path like the pipeline's JsonGet does (used by tests and the gate's consumers)."""
    node = document
    for part in path.split("."):
        node = node[part]
    return node
