"""`samay demo`, the main job, end to end on a local cloud of its own, twice in a row; then the bench.

The demo prints only what it read back from the system's state, so the assertions check those
lines and the state itself (DynamoDB items, the endpoint, the dashboard file).
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cloud import samay_command

DEMO_TIMEOUT_SECONDS = 900


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("samay-demo")
    yield path
    subprocess.run([*samay_command(), "local", "down", "--state-dir", str(path)], capture_output=True, timeout=120)


def _samay(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAMAY_"))}
    return subprocess.run(
        [*samay_command(), *args, "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS, env={**env, "COLUMNS": "200"},
    )


@pytest.mark.cloud
def test_demo_runs_end_to_end_twice_and_the_endpoint_is_fast_enough_to_bench(state_dir: Path) -> None:
    first = _samay(state_dir, "demo")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "Demo complete" in first.stdout
    assert "-> PASS" in first.stdout
    assert "samay-lung-sound InService" in first.stdout
    timings = json.loads((state_dir / "demo-timings.json").read_text())
    assert set(timings) >= {"pipeline execution", "score new recordings", "endpoint serves the new model"}
    assert (state_dir / "dashboard.html").stat().st_size > 1_000_000

    second = _samay(state_dir, "demo")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "Demo complete" in second.stdout

    bench = _samay(state_dir, "bench", "inference", "--json", "--requests", "20")
    assert bench.returncode == 0, bench.stdout + bench.stderr
    figures = json.loads(bench.stdout.strip().splitlines()[-1])
    assert set(figures) == {"p50_ms", "p99_ms", "throughput_rps", "handler_import_ms"}
    assert all(value > 0 for value in figures.values())
