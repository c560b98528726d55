"""The SageMaker container contract without containers: one `/opt/ml` tree and one process per instance.

Instance i of a job gets `<job_dir>/algo-<i>/` standing in for the container's `/`; every container
path `/opt/ml/...` in the request (entrypoint, arguments, LocalPaths) is remapped below it. The image
is ignored: the command runs on this machine's Python, whose virtual environment comes first on
PATH so `python`/`python3`/`pip` in a command or script are that interpreter. pip is kept offline
and dry (PIP_NO_INDEX, PIP_DRY_RUN): a container's `pip install -r requirements.txt` passes when the
environment already satisfies it, fails with pip's own message when not, and never changes the venv
(one pip could fetch from a local find-links folder is only reported as "Would install").

Instances run in parallel; each one's stdout+stderr goes to `<job_dir>/algo-<i>.log` and, prefixed
with the host name, to the job's log. The first instance to exit non-zero stops the others and
fails the job with the tail of its log, as SageMaker's FailureReason carries the tail of the error.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from infra.local.jobs.errors import JobFailed, JobStopped

logger = logging.getLogger(__name__)

OPT_ML = "/opt/ml"
_OPT_ML_PATTERN = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[\s\"'])")
TAIL_LINES = 15
TAIL_CHARS = 800
_POLL_SECONDS = 0.2

OFFLINE_PIP = {
    "PIP_NO_INDEX": "1",
    "PIP_DRY_RUN": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}


def host_names(count: int) -> list[str]:
    """SageMaker's host names: algo-1 ... algo-n, sorted as resourceconfig.json lists them."""
    return [f"algo-{i}" for i in range(1, count + 1)]


def remap(text: str, root: Path) -> str:
    """Every `/opt/ml` container path in `text` (an argument or a script) moved below `root`."""
    return _OPT_ML_PATTERN.sub(lambda _: f"{root}{OPT_ML}", text)


def container_path(root: Path, path: str) -> Path:
    """The local directory standing in for the container path `path` (which must be below /opt/ml)."""
    if path.rstrip("/") != OPT_ML and not path.startswith(OPT_ML + "/"):
        raise JobFailed(f"ClientError: local path {path!r} is not below {OPT_ML}/")
    return root / path.lstrip("/")


def write_json(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")


def resource_config(host: str, hosts: list[str], instance_type: str) -> dict:
    """resourceconfig.json as a homogeneous cluster writes it."""
    return {
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}],
        "network_interface_name": "eth0",
    }


def base_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment, this venv first on PATH, offline pip, unbuffered Python, then `extra`."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env.update(OFFLINE_PIP)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({name: str(value) for name, value in extra.items()})
    return env


@dataclass
class Instance:
    """One container of a job: its host name, root directory, command, environment and cwd."""

    host: str
    root: Path
    command: list[str]
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.root.parent / f"{self.host}.log"

    def log_tail(self) -> str:
        if not self.log_path.is_file():
            return ""
        lines = [line for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        return "\n".join(lines[-TAIL_LINES:])[-TAIL_CHARS:]


def _pump(instance: Instance, stream: IO[bytes], job_log: IO[str], lock: threading.Lock) -> None:
    with instance.log_path.open("w", encoding="utf-8") as own_log:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            own_log.write(line)
            own_log.flush()
            with lock:
                job_log.write(f"{instance.host} | {line}")
                job_log.flush()


def _start(instance: Instance) -> subprocess.Popen:
    try:
        return subprocess.Popen(
            instance.command,
            cwd=instance.cwd,
            env=instance.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise JobFailed(f"ClientError: cannot start {instance.command[0]!r} on {instance.host}: {exc}") from exc


def _stop(instances: Iterable[Instance]) -> None:
    """Terminate each started instance's process group (its shell and the script it runs)."""
    for instance in instances:
        if instance.process is not None and instance.process.poll() is None:
            try:
                os.killpg(instance.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            instance.process.wait()


def _first_failure(instances: list[Instance]) -> Instance | None:
    for instance in instances:
        if instance.process is not None and instance.process.poll() not in (None, 0):
            return instance
    return None


def run_instances(
    instances: list[Instance],
    log_path: Path,
    max_runtime_s: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run every instance to completion; JobFailed if one exits non-zero or the runtime runs out,
    JobStopped once `stop` is set."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    pumps: list[threading.Thread] = []
    deadline = time.monotonic() + max_runtime_s if max_runtime_s else None
    with log_path.open("a", encoding="utf-8") as job_log:
        try:
            for instance in instances:
                logger.info("%s: %s", instance.host, " ".join(instance.command))
                instance.process = _start(instance)
                pump = threading.Thread(target=_pump, args=(instance, instance.process.stdout, job_log, lock), daemon=True)
                pump.start()
                pumps.append(pump)
            failed = _wait(instances, deadline, stop)
        finally:
            _stop(instances)
            for pump in pumps:
                pump.join(timeout=10)
    if failed is not None:
        code = failed.process.returncode if failed.process else None
        raise JobFailed(f"AlgorithmError: {failed.host} exited with code {code}: {failed.log_tail()}")


def _wait(instances: list[Instance], deadline: float | None, stop: threading.Event | None) -> Instance | None:
    while True:
        if stop is not None and stop.is_set():
            raise JobStopped()
        failed = _first_failure(instances)
        if failed is not None or all(i.process is not None and i.process.poll() == 0 for i in instances):
            return failed
        if deadline is not None and time.monotonic() > deadline:
            raise JobFailed("ClientError: the job exceeded StoppingCondition.MaxRuntimeInSeconds and was stopped")
        time.sleep(_POLL_SECONDS)
