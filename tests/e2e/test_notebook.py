"""notebooks/run_pipeline.ipynb runs top to bottom against the local cloud and produces its plots."""
from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lambdas.shared.config import Settings
from steps.synth import synthesize_dataset
from tests.fixtures.cloud import LocalCloud

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "run_pipeline.ipynb"
MANIFEST_COLUMNS = ("recording_id", "patient_id", "diagnosis", "audio_uri", "sha256", "dataset",
                    "location", "device", "filter_mode", "sound_class", "age", "sex")


def _stage_dataset(cloud: LocalCloud, folder: Path) -> str:
    """Audio under raw/audio/ and a manifest under datasets/, as the trigger leaves them."""
    summary = synthesize_dataset(folder, patients=30, recordings_per_patient=3, seed=11, difficulty="easy")
    bucket, s3 = Settings.from_env().bucket, cloud.client("s3")
    rows = []
    with summary.labels_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            body = (folder / row["file"]).read_bytes()
            key = f"raw/audio/notebook/{row['recording_id']}.wav"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            rows.append({**{c: row.get(c, "") for c in MANIFEST_COLUMNS}, "audio_uri": f"s3://{bucket}/{key}",
                         "sha256": hashlib.sha256(body).hexdigest(), "dataset": "notebook"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(Bucket=bucket, Key="datasets/notebook-test/manifest.csv", Body=out.getvalue().encode())
    return f"s3://{bucket}/datasets/notebook-test/manifest.csv"


@pytest.mark.cloud
def test_notebook_runs_the_pipeline_and_plots(local_cloud: LocalCloud, tmp_path: Path) -> None:
    manifest = _stage_dataset(local_cloud, tmp_path / "data")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "outputs are cleared in git"
    notebook.cells[1].source = notebook.cells[1].source.replace("INPUT_DATA_URL = None", f'INPUT_DATA_URL = "{manifest}"')
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "execution Succeeded" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the confusion matrix was plotted"
    last = notebook.cells[-1].outputs[-1]["data"]["text/plain"]
    assert last.count("\n") >= 3, f"three scored recordings expected:\n{last}"
