"""`samay predict` against the scripted runtime endpoint."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from pipelines.cli import app
from tests.lambdas.runtime_stub import PROBABILITIES, RuntimeStub
from tests.lambdas.wav_bytes import wav_bytes


@pytest.fixture
def wavs(tmp_path: Path) -> dict[str, Path]:
    files = {"good1": wav_bytes(2.0), "good2": wav_bytes(3.0, bits=24, channels=2), "bad": b"this is not audio"}
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.wav"
        paths[name].write_bytes(data)
    return paths


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["predict", *args])


def test_table_shows_label_and_probabilities(runtime_stub: RuntimeStub, wavs: dict[str, Path]) -> None:
    result = run(str(wavs["good1"]), str(wavs["good2"]))
    assert result.exit_code == 0, result.output
    assert "good1.wav" in result.output and "good2.wav" in result.output
    assert result.output.count("Normal") == 3  # two rows and the Normal column header
    assert "0.700" in result.output and "COPD" in result.output
    assert len(runtime_stub.calls()) == 2


def test_json_prints_one_object_per_file(runtime_stub: RuntimeStub, wavs: dict[str, Path]) -> None:
    result = run("--json", str(wavs["good1"]), str(wavs["good2"]))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(row["file"]).name for row in rows] == ["good1.wav", "good2.wav"]
    for row in rows:
        assert (row["label"], row["probabilities"], row["model_version"]) == ("Normal", PROBABILITIES, "1")
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)


def test_bad_file_is_reported_and_the_others_still_scored(runtime_stub: RuntimeStub, wavs: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    result = run("--json", str(wavs["bad"]), str(wavs["good1"]), str(missing))
    # THEN the exit code is non-zero, each bad file has its own error, and the good file was scored
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(row["file"]).name, row.get("error")) for row in rows] == [("bad.wav", "not_wav"), ("good1.wav", None), ("missing.wav", "unreadable")]
    stderr = " ".join(result.stderr.split())  # rich wraps long lines
    assert "not a RIFF/WAVE file" in stderr and "cannot read" in stderr
    assert "2 of 3 file(s) could not be scored" in stderr
    assert "Traceback" not in result.output
    assert len(runtime_stub.calls()) == 1


def test_endpoint_option_names_the_endpoint(runtime_stub: RuntimeStub, wavs: dict[str, Path]) -> None:
    result = run("--endpoint", "samay-canary", str(wavs["good1"]))
    assert result.exit_code == 0, result.output
    assert runtime_stub.calls()[0]["path"] == "/endpoints/samay-canary/invocations"


def test_endpoint_down_is_a_clear_error(runtime_stub: RuntimeStub, wavs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_INVOKE_MAX_ATTEMPTS", "2")
    runtime_stub.script({"status": 503, "error": "ServiceUnavailable"}, {"status": 503, "error": "ServiceUnavailable"})
    result = run(str(wavs["good1"]))
    assert result.exit_code == 1
    stderr = " ".join(result.stderr.split())  # rich wraps long lines
    assert "gave up after 2 attempts" in stderr and "(endpoint_unavailable)" in stderr
