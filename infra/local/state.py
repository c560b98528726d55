"""Where the local cloud keeps things under its state directory, and the record of what runs.

Layout of `<state-dir>` (default `.samay/`):

    cloud.json               what `local up` started: per component its pid, port, url, log, command
    cloud.lock               held while `up` or `down` runs, so two of them never interleave
    logs/<component>.log     stdout+stderr of each process (moto, sagemaker, router)
    moto/                    snapshot of moto's data, written by `down`, restored by `up` (see snapshot.py)
    router/checkpoints.json  the event router's Kinesis checkpoints (per stream, per shard)
    sagemaker/               the local SageMaker service's own persisted state

The record is plain JSON so `status`, `down` and tests read it without importing the processes.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_STATE_DIR = Path(".samay")
HOST = "127.0.0.1"


@dataclass
class Component:
    """One process started by `local up`."""

    name: str
    pid: int
    port: int
    url: str
    log: str
    command: list[str] = field(default_factory=list)

    def is_alive(self) -> bool:
        return pid_alive(self.pid, self.command)


@dataclass
class CloudRecord:
    """The content of cloud.json: the components and the environment clients need."""

    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"components": {n: asdict(c) for n, c in self.components.items()}, "env": self.env}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> "CloudRecord":
        data = json.loads(text)
        return cls(
            components={n: Component(**c) for n, c in data.get("components", {}).items()},
            env=dict(data.get("env", {})),
        )


@dataclass(frozen=True)
class StateDir:
    """Paths inside one state directory; creating it is the caller's choice (`ensure()`)."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str] | None) -> "StateDir":
        return cls(Path(path or DEFAULT_STATE_DIR).resolve())

    @property
    def record_file(self) -> Path:
        return self.root / "cloud.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def moto_snapshot(self) -> Path:
        return self.root / "moto"

    @property
    def router(self) -> Path:
        return self.root / "router"

    @property
    def sagemaker(self) -> Path:
        return self.root / "sagemaker"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def ensure(self) -> "StateDir":
        for path in (self.root, self.logs, self.router, self.sagemaker):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def read_record(self) -> CloudRecord:
        if not self.record_file.is_file():
            return CloudRecord()
        return CloudRecord.from_json(self.record_file.read_text())

    def write_record(self, record: CloudRecord) -> None:
        tmp = self.record_file.with_suffix(".json.tmp")
        tmp.write_text(record.to_json())
        tmp.replace(self.record_file)

    def clear_record(self) -> None:
        self.record_file.unlink(missing_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise `up` and `down` on this state directory (an advisory file lock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "cloud.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def pid_alive(pid: int, command: list[str] | None = None) -> bool:
    """True when `pid` runs and (where /proc tells) still runs our command, not a recycled PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False  # ended between the probe and the read
    except OSError:
        return True  # no /proc (macOS): the signal probe is all we have
    if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
        return False  # a zombie no longer runs; its parent has not collected it yet
    if command and parts != [b""]:  # the cmdline reads empty for an instant right after exec
        return all(arg.encode() in parts for arg in command[1:3])
    return True


def descendants(pid: int) -> list[tuple[int, list[str]]]:
    """Every process below `pid` (children, grandchildren...) with its argv, from /proc; empty without /proc.

    Jobs and endpoint hosts start their own sessions, so signalling a component's process group
    does not reach them; `down` collects them first and ends those their parent left behind.
    """
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append((child, _argv(child)))
            todo.append(child)
    return found


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
