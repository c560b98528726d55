"""A scripted SageMaker-runtime endpoint for unit tests, run as a subprocess on a free port.

moto has no InvokeEndpoint that runs our model, so this speaks just the runtime's REST protocol
(`POST /endpoints/<name>/invocations`, raw body in, raw JSON out, errors as `x-amzn-ErrorType` +
JSON body) and answers from a behaviour file the test writes: a list of scripted responses
consumed one per call (e.g. two 503s), then the default: a DESIGN 4.7 prediction for anything
that starts like a WAV, a ModelError (client error 400 from the model) for anything else. Every
call is appended to `calls.jsonl`, so a test can count what reached the endpoint. The real
endpoint (the local cloud's host running the model artifact) is exercised by tests/e2e.

    python -m tests.lambdas.runtime_stub --port 8123 --state-dir DIR
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lambdas.shared import scoring
from tests.fixtures.moto import FAKE_CREDENTIALS, free_port, wait_for_http

PROBABILITIES = {"Asthma": 0.1, "COPD": 0.2, "Normal": 0.7}
MODEL_VERSION = "1"


def _prediction(body: bytes) -> dict[str, Any]:
    return {"label": "Normal", "probabilities": PROBABILITIES, "model_version": MODEL_VERSION, "windows": max(1, len(body) // 40_000)}


class _Handler(BaseHTTPRequestHandler):
    state_dir: Path

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._send(200, {"status": "ok"})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        calls = self.state_dir / "calls.jsonl"
        index = len(calls.read_text().splitlines()) if calls.exists() else 0
        with calls.open("a") as handle:
            handle.write(json.dumps({"path": self.path, "content_type": self.headers.get("Content-Type"), "bytes": len(body)}) + "\n")
        behaviour = json.loads((self.state_dir / "behaviour.json").read_text())
        scripted = behaviour.get("responses", [])
        if index < len(scripted):
            self._answer(scripted[index], body)
        elif body[:4] == b"RIFF" and body[8:12] == b"WAVE":
            self._send(200, _prediction(body))
        else:
            self._answer({"status": 424, "error": "ModelError", "original_status": 400, "message": "not a WAV"}, body)

    def _answer(self, scripted: dict[str, Any], body: bytes) -> None:
        if scripted.get("status", 200) == 200:
            self._send(200, scripted.get("body", _prediction(body)))
            return
        payload: dict[str, Any] = {"message": scripted.get("message", "scripted failure")}
        if scripted.get("error") == "ModelError":
            payload.update(OriginalStatusCode=scripted.get("original_status", 400), OriginalMessage=payload["message"])
        self._send(scripted["status"], payload, error_type=scripted.get("error"))

    def _send(self, status: int, payload: Any, error_type: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server signature)
        """Quiet: the calls log is the record."""


@dataclass
class RuntimeStub:
    """Handle a test holds on the running stub."""

    url: str
    state_dir: Path

    def script(self, *responses: dict[str, Any]) -> None:
        """Answer the next calls with these responses, in order, then score normally."""
        (self.state_dir / "behaviour.json").write_text(json.dumps({"responses": list(responses)}))
        (self.state_dir / "calls.jsonl").unlink(missing_ok=True)

    def calls(self) -> list[dict[str, Any]]:
        path = self.state_dir / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="session")
def runtime_stub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeStub]:
    """One stub process per session; `runtime_stub` resets its script and log for each test."""
    state_dir = tmp_path_factory.mktemp("runtime-stub")
    stub = RuntimeStub(url="", state_dir=state_dir)
    stub.script()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.lambdas.runtime_stub", "--port", str(port), "--state-dir", str(state_dir)],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        stub.url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{stub.url}/ping")
        yield stub
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def runtime_stub(runtime_stub_server: RuntimeStub, monkeypatch: pytest.MonkeyPatch) -> Iterator[RuntimeStub]:
    """The scripted endpoint, reset, with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME pointing at it."""
    runtime_stub_server.script()
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, os.environ.get(name, value))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime_stub_server.url)
    monkeypatch.setenv("SAMAY_INVOKE_BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("SAMAY_INVOKE_BACKOFF_MAX_S", "0.05")
    scoring.runtime_client.cache_clear()
    yield runtime_stub_server
    scoring.runtime_client.cache_clear()


def main(args: argparse.Namespace) -> None:
    _Handler.state_dir = Path(args.state_dir)
    ThreadingHTTPServer(("127.0.0.1", args.port), _Handler).serve_forever()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
