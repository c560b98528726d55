"""The SageMaker backend: one object per account and region holding one dict per resource type.

State is persisted as one JSON file per backend under the state directory after every change, so
`samay local down` then `up` keeps pipelines, executions, jobs, model packages, models and
endpoints. What cannot survive a restart is repaired on load: running executions are marked
Failed and serving endpoints get new hosts.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from infra.local.sagemaker.hosting import EndpointHosts, HostFactory, start_endpoint_host
from infra.local.sagemaker.models.base import Record, StatusCallback
from infra.local.sagemaker.models.endpoints import EndpointsMixin
from infra.local.sagemaker.models.executions import ExecutionsMixin
from infra.local.sagemaker.models.jobs import JobsMixin
from infra.local.sagemaker.models.pipelines import PipelinesMixin
from infra.local.sagemaker.models.registry import RegistryMixin

logger = logging.getLogger(__name__)

ExecutionLauncher = Callable[["SageMakerBackend", str], None]
"""Starts running an execution (by ARN) in the background; the executor module provides it."""

_PERSISTED = ("pipelines", "executions", "execution_steps", "request_tokens", "processing_jobs", "training_jobs",
              "model_package_groups", "model_packages", "models", "endpoint_configs", "endpoints", "tags")


class SageMakerBackend(PipelinesMixin, ExecutionsMixin, JobsMixin, RegistryMixin, EndpointsMixin):
    def __init__(self, account: str, region: str, state_dir: Path, *, launch_execution: ExecutionLauncher,
                 on_status_change: StatusCallback | None = None,
                 start_host: HostFactory = start_endpoint_host) -> None:
        self.account = account
        self.region = region
        self.state_dir = state_dir
        self.lock = threading.RLock()
        self.pipelines: dict[str, Record] = {}
        self.executions: dict[str, Record] = {}
        self.execution_steps: dict[str, dict[str, Record]] = {}
        self.request_tokens: dict[str, str] = {}
        self.processing_jobs: dict[str, Record] = {}
        self.training_jobs: dict[str, Record] = {}
        self.model_package_groups: dict[str, Record] = {}
        self.model_packages: dict[str, Record] = {}
        self.models: dict[str, Record] = {}
        self.endpoint_configs: dict[str, Record] = {}
        self.endpoints: dict[str, Record] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.stop_signals: dict[str, threading.Event] = {}  # per running execution; not persisted
        self.hosts = EndpointHosts(state_dir / "hosts" / account / region, start_host)
        self._launch = launch_execution
        self._on_status_change = on_status_change
        self._state_file = state_dir / "state" / account / f"{region}.json"

    @property
    def jobs_dir(self) -> Path:
        """Where each job gets `<name>/` (its container directories) and `<name>.log`."""
        return self.state_dir / "jobs" / self.account / self.region

    def load(self) -> None:
        """Restore the persisted state, then repair what a restart broke."""
        if self._state_file.is_file():
            saved = json.loads(self._state_file.read_text())
            with self.lock:
                for name in _PERSISTED:
                    getattr(self, name).update(saved.get(name, {}))
            logger.info("restored %d pipelines, %d executions, %d endpoints from %s",
                        len(self.pipelines), len(self.executions), len(self.endpoints), self._state_file)
        self.fail_interrupted_executions()
        self.rehost_endpoints()

    def reset(self) -> None:
        """Forget everything (tests); running hosts are stopped."""
        self.hosts.stop_all()
        with self.lock:
            for name in _PERSISTED:
                getattr(self, name).clear()
            self._save()

    def shutdown(self) -> None:
        self.hosts.stop_all()

    def add_tags(self, resource_arn: str, tags: list[dict[str, str]]) -> Record:
        with self.lock:
            self._tag(resource_arn, tags)
            self._save()
        return {"Tags": tags}

    def list_tags(self, resource_arn: str, max_results: int | None = None, next_token: str | None = None) -> Record:
        with self.lock:
            held = self.tags.get(resource_arn, {})
            return {"Tags": [{"Key": key, "Value": value} for key, value in held.items()]}

    def delete_tags(self, resource_arn: str, tag_keys: list[str]) -> Record:
        with self.lock:
            for key in tag_keys:
                self.tags.get(resource_arn, {}).pop(key, None)
            self._save()
        return {}

    def _tag(self, arn: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            self.tags.setdefault(arn, {}).update({tag["Key"]: tag.get("Value", "") for tag in tags})

    def _save(self) -> None:
        """Write the whole state atomically (callers hold the lock)."""
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({name: getattr(self, name) for name in _PERSISTED}))
        os.replace(temporary, self._state_file)

    def _notify(self, resource_type: str, arn: str, status: str) -> None:
        logger.info("%s %s -> %s", resource_type, arn, status)
        if self._on_status_change is None:
            return
        try:
            self._on_status_change(resource_type, arn, status)
        except Exception:  # a listener's bug must not fail the resource whose status changed
            logger.exception("on_status_change listener failed for %s %s", resource_type, arn)

    def _launch_execution(self, arn: str) -> None:
        self._launch(self, arn)


class BackendDict:
    """Backends keyed by account, then region, created (and loaded) on first use, as moto does."""

    def __init__(self, factory: Callable[[str, str], SageMakerBackend]) -> None:
        self._factory = factory
        self._backends: dict[tuple[str, str], SageMakerBackend] = {}
        self._lock = threading.Lock()

    def get(self, account: str, region: str) -> SageMakerBackend:
        with self._lock:
            backend = self._backends.get((account, region))
            if backend is None:
                backend = self._backends[(account, region)] = self._factory(account, region)
                backend.load()
            return backend

    def load_saved(self, state_dir: Path) -> None:
        """Load every backend that has saved state, so its endpoints are hosted again at start-up."""
        for state_file in sorted((state_dir / "state").glob("*/*.json")):
            self.get(state_file.parent.name, state_file.stem)

    def all(self) -> list[SageMakerBackend]:
        with self._lock:
            return list(self._backends.values())

