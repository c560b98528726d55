"""Live endpoint hosts: which EndpointHost answers each endpoint, swapped without dropping requests.

An update starts the new host first, then switches the endpoint to it under a lock, then waits
until the requests already inside the old host have finished before stopping it. A request holds
its host for its whole duration, so no request ever meets a stopped host.
"""
from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 120.0


class Host(Protocol):
    """What infra.local.endpoint_host.EndpointHost offers (H4c's module)."""

    pid: int
    port: int

    def invoke(self, body: bytes, content_type: str, accept: str | None) -> tuple[int, bytes, str]: ...

    def stop(self) -> None: ...


HostFactory = Callable[[str, Path], Host]


def start_endpoint_host(model_data_url: str, work_dir: Path) -> Host:
    # Imported on first use: the service starts (and serves pipelines) without the host's imports.
    from infra.local.endpoint_host import EndpointHost

    return EndpointHost.start(model_data_url, work_dir)


class _Slot:
    """One running host and the number of requests inside it."""

    def __init__(self, host: Host, work_dir: Path) -> None:
        self.host = host
        self.work_dir = work_dir
        self.in_flight = 0
        self.idle = threading.Condition()

    def enter(self) -> None:
        with self.idle:
            self.in_flight += 1

    def leave(self) -> None:
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def drain_and_stop(self) -> None:
        with self.idle:
            if not self.idle.wait_for(lambda: self.in_flight == 0, timeout=DRAIN_TIMEOUT_S):
                logger.warning("host pid %s still had %d requests after %.0f s; stopping it",
                               self.host.pid, self.in_flight, DRAIN_TIMEOUT_S)
        self.host.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)


class EndpointHosts:
    """The running hosts of one service process, by endpoint ARN."""

    def __init__(self, work_root: Path, start_host: HostFactory = start_endpoint_host) -> None:
        self._work_root = work_root
        self._start_host = start_host
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def start(self, endpoint_arn: str, model_data_url: str) -> _Slot:
        """Start a host for the artifact (blocks until it answers); it serves nothing until `activate`."""
        with self._lock:
            self._generation += 1
            work_dir = self._work_root / f"{endpoint_arn.rsplit('/', 1)[-1]}-{self._generation}"
        work_dir.mkdir(parents=True, exist_ok=True)
        return _Slot(self._start_host(model_data_url, work_dir), work_dir)

    def activate(self, endpoint_arn: str, slot: _Slot) -> None:
        """Switch the endpoint to `slot`, then drain and stop the host it replaces."""
        with self._lock:
            old = self._slots.get(endpoint_arn)
            self._slots[endpoint_arn] = slot
        if old is not None:
            old.drain_and_stop()

    def invoke(self, endpoint_arn: str, body: bytes, content_type: str, accept: str | None) -> tuple[int, bytes, str] | None:
        """The host's answer, or None when the endpoint has no running host."""
        with self._lock:
            slot = self._slots.get(endpoint_arn)
            if slot is None:
                return None
            slot.enter()
        try:
            return slot.host.invoke(body, content_type, accept or "application/json")
        finally:
            slot.leave()

    def discard(self, slot: _Slot) -> None:
        """Stop a host that never became active (its endpoint was deleted or failed meanwhile)."""
        slot.drain_and_stop()

    def stop(self, endpoint_arn: str) -> None:
        with self._lock:
            slot = self._slots.pop(endpoint_arn, None)
        if slot is not None:
            slot.drain_and_stop()

    def stop_all(self) -> None:
        with self._lock:
            arns = list(self._slots)
        for arn in arns:
            self.stop(arn)

    def describe(self) -> dict[str, dict[str, Any]]:
        """pid and port per endpoint ARN (for `samay local status`)."""
        with self._lock:
            return {arn: {"pid": slot.host.pid, "port": slot.host.port} for arn, slot in self._slots.items()}
