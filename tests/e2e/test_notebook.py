"""notebooks/run_pipeline.ipynb runs top to bottom against the local cloud and produces its plots."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.fixtures.cloud import LocalCloud

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "run_pipeline.ipynb"


@pytest.mark.cloud
def test_notebook_runs_the_pipeline_and_plots(local_cloud: LocalCloud, staged_manifest: str) -> None:
    manifest = staged_manifest
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
