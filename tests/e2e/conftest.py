"""A training dataset staged in the shared local cloud the way the trigger leaves one."""
from __future__ import annotations

import csv
import hashlib
import io

import pytest

from steps.synth import synthesize_dataset
from tests.fixtures.cloud import LocalCloud

MANIFEST_COLUMNS = ("recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset",
                    "location", "device", "filter_mode", "sound_class", "age", "sex")
BUCKET = "samay-local"


@pytest.fixture(scope="session")
def staged_manifest(shared_local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Audio under raw/audio/ and datasets/e2e/manifest.csv (an easy synthetic set the gate can pass)."""
    folder = tmp_path_factory.mktemp("e2e-data")
    summary = synthesize_dataset(folder, patients=30, recordings_per_patient=3, seed=11, difficulty="easy")
    s3, rows = shared_local_cloud.client("s3"), []
    with summary.labels_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            body = (folder / row["file"]).read_bytes()
            key = f"raw/audio/e2e/{row['recording_id']}.wav"
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            rows.append({**{c: row.get(c, "") for c in MANIFEST_COLUMNS}, "audio_uri": f"s3://{BUCKET}/{key}",
                         "sha256": hashlib.sha256(body).hexdigest(), "dataset": "e2e"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(Bucket=BUCKET, Key="datasets/e2e/manifest.csv", Body=out.getvalue().encode())
    return f"s3://{BUCKET}/datasets/e2e/manifest.csv"
