"""The endpoint host: one model artifact served by its own subprocess, as an endpoint's container.

`EndpointHost.start(model_data_url, work_dir)` downloads and extracts `model.tar.gz` (DESIGN 4.7)
into `work_dir/model`, starts `python -m infra.local.endpoint_host serve --model-dir DIR --port P`
on a free 127.0.0.1 port (see `endpoint_server` for what it answers) and returns once `/ping`
answers. `invoke` talks to it over one keep-alive HTTP session; `stop` ends it by its PID.
A model update is a second host started beside the first, then the first stopped: the service
swaps which host it calls, so no request is dropped.

Usage of the module itself: `python -m infra.local.endpoint_host serve --model-dir DIR --port P`.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import requests

from infra.local.jobs import s3io
from infra.local.jobs.errors import JobFailed

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0
INVOKE_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 20


class EndpointHostError(RuntimeError):
    """The model artifact could not be fetched, or its host did not start or answer."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch_model(model_data_url: str, model_dir: Path) -> None:
    """Download (s3://) or copy (a local path) model.tar.gz and extract it into model_dir."""
    archive = model_dir.parent / "model.tar.gz"
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        if model_data_url.startswith("s3://"):
            s3io.download_file(model_data_url, archive)
        else:
            archive = Path(model_data_url.removeprefix("file://"))
        with tarfile.open(archive) as bundle:
            bundle.extractall(model_dir, filter="data")
    except JobFailed as exc:
        raise EndpointHostError(f"cannot fetch model data {model_data_url}: {exc.reason}") from exc
    except (OSError, tarfile.TarError) as exc:
        raise EndpointHostError(f"model data {model_data_url} is not a readable model.tar.gz: {exc}") from exc


class EndpointHost:
    """A running endpoint host process and a keep-alive session to it."""

    def __init__(self, process: subprocess.Popen, port: int, model_dir: Path, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.model_dir = model_dir
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self._session = requests.Session()

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, model_data_url: str, work_dir: Path, timeout_s: float = START_TIMEOUT_S) -> "EndpointHost":
        """Fetch the artifact, start its host, and return once it answers /ping."""
        work_dir = Path(work_dir)
        model_dir = work_dir / "model"
        fetch_model(model_data_url, model_dir)
        port = _free_port()
        log_path = work_dir / "host.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "infra.local.endpoint_host", "serve", "--model-dir", str(model_dir), "--port", str(port)],
                cwd=work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        host = cls(process, port, model_dir, log_path)
        host._wait_ready(timeout_s)
        logger.info("endpoint host pid %d serves %s on %s", process.pid, model_data_url, host.url)
        return host

    def log_tail(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines() if self.log_path.is_file() else []
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EndpointHostError(
                    f"endpoint host exited with code {self.process.returncode} before answering /ping:\n{self.log_tail()}"
                )
            try:
                if self._session.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or too busy loading to answer in time
                pass
            time.sleep(0.2)
        self.stop()
        raise EndpointHostError(f"endpoint host did not answer /ping within {timeout_s:.0f} s:\n{self.log_tail()}")

    def invoke(
        self, body: bytes, content_type: str, accept: str = "application/json", custom_attributes: str | None = None
    ) -> tuple[int, bytes, str]:
        """POST /invocations; returns (status, body, content type) as the container answered."""
        headers = {"Content-Type": content_type, "Accept": accept}
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        try:
            response = self._session.post(f"{self.url}/invocations", data=body, headers=headers, timeout=INVOKE_TIMEOUT_S)
        except requests.RequestException as exc:
            raise EndpointHostError(f"endpoint host {self.url} did not answer: {exc}\n{self.log_tail()}") from exc
        return response.status_code, response.content, response.headers.get("Content-Type", "application/octet-stream")

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the host by its PID (SIGTERM, then SIGKILL) and close the session."""
        self._session.close()
        if self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it exited between poll() and kill()
            pass
        self.process.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local.endpoint_host")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve an extracted model artifact (the host subprocess)")
    serve.add_argument("--model-dir", type=Path, required=True)
    serve.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from infra.local.endpoint_server import serve  # TensorFlow is loaded in the host process only

    serve(args.model_dir, args.port)


if __name__ == "__main__":
    main(parse_args())
