"""The dataset manifest `datasets/<version>/manifest.csv` that a pipeline run trains on.

It lists every accepted labelled recording in the ledger (all datasets, so each run sees all the
data), one row per (dataset, recording_id) — a re-pushed recording counts once, its latest
version wins — minus audio that is byte-identical under different patients or labels (real data
has such pairs: they would leak across splits or teach contradictions). Those are listed, with
the reason, in `excluded.csv` beside the manifest.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lambdas.shared.schemas import RecordingRecord
from lambdas.shared.storage import put_once

MANIFEST_COLUMNS = (
    "recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset",
    "location", "device", "filter_mode", "sound_class", "age", "sex",
)
EXCLUDED_COLUMNS = ("recording_id", "dataset", "patient_id", "diagnosis", "sha256", "reason", "identical_to")
IDENTICAL_AUDIO_CONFLICT = "identical_audio_conflict"


@dataclass(frozen=True)
class Manifest:
    rows: list[dict[str, object]]
    excluded: list[dict[str, object]]


def latest_per_recording(recordings: Iterable[RecordingRecord]) -> list[RecordingRecord]:
    """One record per (dataset, recording_id): the one sent last."""
    latest: dict[tuple[str, str], RecordingRecord] = {}
    for record in recordings:
        key = (record.dataset, record.recording_id)
        if key not in latest or record.sent_at > latest[key].sent_at:
            latest[key] = record
    return sorted(latest.values(), key=lambda r: (r.dataset, r.recording_id))


def split_conflicts(records: Sequence[RecordingRecord]) -> tuple[list[RecordingRecord], list[dict[str, object]]]:
    """(kept, excluded rows): audio shared by several patients or labels is excluded entirely."""
    by_sha: dict[str, list[RecordingRecord]] = defaultdict(list)
    for record in records:
        by_sha[record.sha256].append(record)
    kept: list[RecordingRecord] = []
    excluded: list[dict[str, object]] = []
    for record in records:
        group = by_sha[record.sha256]
        if len({r.patient_id for r in group}) > 1 or len({r.diagnosis for r in group}) > 1:
            others = sorted(f"{r.dataset}/{r.recording_id}" for r in group if r is not record)
            excluded.append({
                "recording_id": record.recording_id, "dataset": record.dataset,
                "patient_id": record.patient_id, "diagnosis": record.diagnosis, "sha256": record.sha256,
                "reason": IDENTICAL_AUDIO_CONFLICT, "identical_to": " ".join(others),
            })
        else:
            kept.append(record)
    return kept, excluded


def manifest_row(record: RecordingRecord) -> dict[str, object]:
    row: dict[str, object] = {
        "recording_id": record.recording_id, "patient_id": record.patient_id, "diagnosis": record.diagnosis,
        "audio_uri": record.audio_uri, "sha256": record.sha256, "dataset": record.dataset,
    }
    for name, value in record.metadata.items():
        row.setdefault(name, value)  # metadata never overrides the record's own fields
    return row


def build_manifest(recordings: Iterable[RecordingRecord]) -> Manifest:
    """Labelled, deduplicated, conflict-free rows for the pipeline."""
    labelled = [r for r in latest_per_recording(recordings) if r.labelled]
    kept, excluded = split_conflicts(labelled)
    return Manifest(rows=[manifest_row(r) for r in kept], excluded=excluded)


def to_csv(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> bytes:
    """CSV with the fixed columns first, then any extra metadata columns in name order."""
    extra = sorted({name for row in rows for name in row} - set(columns))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*columns, *extra], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode()


def manifest_prefix(version: str) -> str:
    return f"datasets/{version}/"


def write_manifest(bucket: str, version: str, manifest: Manifest) -> str:
    """Write once (a retry keeps what the first attempt wrote) and return the manifest's URI."""
    prefix = manifest_prefix(version)
    put_once(bucket, f"{prefix}excluded.csv", to_csv(manifest.excluded, EXCLUDED_COLUMNS), "text/csv")
    put_once(bucket, f"{prefix}manifest.csv", to_csv(manifest.rows, MANIFEST_COLUMNS), "text/csv")
    return f"s3://{bucket}/{prefix}manifest.csv"
