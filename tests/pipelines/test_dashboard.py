"""The dashboard reads predictions, the registry, the endpoint and quarantine back, and renders them."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lambdas.shared import aws
from lambdas.shared.config import Settings
from pipelines.cli import app
from pipelines.dashboard import data, page
from tests.fixtures.browser import run_chromium

BUCKET = "samay-dash-test"


def _prediction(recording: str, label: str | None, day: str, status: str = "OK", device: str = "littmann") -> dict:
    return {
        "recording_id": recording, "model_version": "1", "status": status, "predicted_label": label,
        "probabilities": {label: 1.0} if label else None, "created_at": f"{day}T10:00:00.000Z",
        "device": device, "location": "trachea", "error": None if label else "not a WAV", "error_reason": None if label else "not_wav",
    }


@pytest.fixture
def seeded(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SAMAY_BUCKET", BUCKET)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rows = [
        _prediction("r1", "Asthma", "2026-11-20"),
        _prediction("r2", "Normal", "2026-11-21"),
        _prediction("r3", "Asthma", "2026-11-21", device="meditron"),
        _prediction("r4", None, "2026-11-21", status="FAILED"),
    ]
    for row in rows:
        key = f"predictions/dt={row['created_at'][:10]}/{row['recording_id']}.1.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(row) + "\n")
    quarantine = [{"raw": "x", "reason": "not_json"}, {"raw": "{}", "reason": "missing_field"}, {"raw": "y", "reason": "not_json"}]
    s3.put_object(Bucket=BUCKET, Key="quarantine/dt=2026-11-21/q.jsonl", Body="".join(json.dumps(q) + "\n" for q in quarantine))
    report = {"multiclass_classification_metrics": {"accuracy": {"value": 0.83}}, "baseline": {"accuracy": 0.31}}
    s3.put_object(Bucket=BUCKET, Key="pipelines/x/evaluation.json", Body=json.dumps(report))
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="SamayLungSoundModels")
    sagemaker.create_model_package(
        ModelPackageGroupName="SamayLungSoundModels",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "tf-serving", "ModelDataUrl": f"s3://{BUCKET}/models/model.tar.gz"}],
            "SupportedContentTypes": ["audio/wav"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/pipelines/x/evaluation.json"}}},
    )
    return Settings.from_env()


def test_collect_reads_every_source_back(seeded: Settings) -> None:
    collected = data.collect(seeded)
    assert len(collected.predictions) == 4
    assert [p["recording_id"] for p in collected.failures] == ["r4"]
    assert collected.quarantine_reasons == {"not_json": 2, "missing_field": 1}
    assert [(m.version, m.approval, m.accuracy, m.baseline) for m in collected.models] == [(1, "Approved", 0.83, 0.31)]
    assert collected.in_service is None  # no endpoint yet


def test_render_holds_every_chart_and_the_figures(seeded: Settings) -> None:
    html = page.render(data.collect(seeded))
    for div in ("chart-over-time", "chart-classes", "chart-device", "chart-location", "chart-accuracy", "chart-outcomes"):
        assert f'id="{div}"' in html
    assert ">4</div><div class=\"label\">Predictions stored" in html
    assert "0.83 / 0.70" in html
    assert "https://" not in html.split("<body>")[0].split("</script>")[-1], "no external resources in <head>"


def test_cli_writes_the_page(seeded: Settings, tmp_path: Path) -> None:
    out = tmp_path / "dash.html"
    result = CliRunner().invoke(app, ["dashboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1_000_000  # plotly.js is inlined: the page works offline


def test_page_renders_its_charts_in_headless_chromium(seeded: Settings, chromium: str, tmp_path: Path) -> None:
    out = tmp_path / "dash.html"
    out.write_text(page.render(data.collect(seeded)))
    dom = run_chromium(chromium, out.as_uri(), tmp_path / "profile", "--dump-dom", "--window-size=1400,900")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 6, "plotly drew an SVG per chart"
    assert dom.stdout.count('class="point"') >= 4, "bars were drawn"
    first, second = (
        re.search(rf'id="{div}".*?<svg class="main-svg"[^>]* width="(\d+)"', dom.stdout, re.S).group(1)
        for div in ("chart-over-time", "chart-classes")
    )
    assert first == second, f"side-by-side charts got widths {first}, {second} (one laid out before the grid)"
    shot = Path(os.environ.get("SAMAY_SCREENSHOT", tmp_path / "dash.png"))
    result = run_chromium(chromium, out.as_uri(), tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1400,1800")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
