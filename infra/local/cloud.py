"""The local cloud's supervisor: start, stop and inspect its processes.

Three processes, each detached in its own session (so a closed terminal does not end them) and
each the leader of its own process group (so `stop` also ends what it spawned: jobs, endpoint hosts):

    moto       `python -m moto.server -H 127.0.0.1 -p <port>`   S3, DynamoDB, Kinesis, EventBridge, SQS, IAM, ...
    sagemaker  `python -m infra.local.sagemaker --host 127.0.0.1 --port <port> --state-dir <state>/sagemaker`
    router     `python -m infra.local.router --state-dir <state> --port <port>`   (health endpoint)

moto runs as its own stock process rather than in-process (ThreadedMotoServer) so its crash, log
and restart stay separate from ours. `start` brings moto up, deploys `infra/template.yaml` into it
(stack `samay`), restores its snapshot into the stack's resources, adds the local wiring
(provision.py), then starts the SageMaker service and the router; it returns when each answers
over HTTP. `stop` ends the router first (no event is half-delivered), then the SageMaker service
(its last S3 writes land), saves moto's snapshot, and ends moto. Everything is recorded in `<state>/cloud.json`.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from infra.local import provision, snapshot
from infra.local.provision import Clients
from infra.local.router import Checkpoints
from infra.local.state import HOST, CloudRecord, Component, StateDir, descendants, free_port, pid_alive
from lambdas.shared import config

logger = logging.getLogger(__name__)

MOTO, SAGEMAKER, ROUTER = "moto", "sagemaker", "router"
ORDER = (MOTO, SAGEMAKER, ROUTER)  # start order; stop goes the other way
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
HEALTH_PATHS = {MOTO: "/moto-api/", SAGEMAKER: "/_samay/health", ROUTER: "/"}
STOP_GRACE_SECONDS = 20.0
START_TIMEOUT_SECONDS = 120.0

Progress = Callable[[str], None]


class CloudError(RuntimeError):
    """The local cloud could not be started or reached; the message says which part and where its log is."""


def client_env(moto_url: str, sagemaker_url: str, bucket: str = config.LOCAL_BUCKET) -> dict[str, str]:
    """The variables that point boto3, the SageMaker SDK and the AWS CLI at the local cloud (`local env`)."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_url,
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": config.DEFAULT_REGION,
        "AWS_REGION": config.DEFAULT_REGION,
        "SAMAY_BUCKET": bucket,
    }


def _child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment with the local cloud's variables on top; no stale session token."""
    merged = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    merged.update(env)
    merged["PYTHONUNBUFFERED"] = "1"
    return merged


def _spawn(state: StateDir, name: str, command: list[str], port: int, env: Mapping[str, str]) -> Component:
    log = state.log_file(name)
    with open(log, "ab") as handle:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
            command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            env=_child_env(env), start_new_session=True, close_fds=True,
        )
    logger.info("started %s pid=%d port=%d", name, process.pid, port)
    return Component(name=name, pid=process.pid, port=port, url=f"http://{HOST}:{port}", log=str(log), command=command)


def _answers(component: Component) -> bool:
    path = HEALTH_PATHS.get(component.name, "/")
    try:
        return requests.get(component.url + path, timeout=2).ok
    except requests.RequestException:
        return False


def _wait_ready(component: Component, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(component):
            return
        if not component.is_alive():
            raise CloudError(f"{component.name} exited while starting; see {component.log}")
        time.sleep(0.2)
    raise CloudError(f"{component.name} did not answer on {component.url} within {timeout:.0f} s; see {component.log}")


def running(state: StateDir) -> CloudRecord | None:
    """The record when every component is alive and answers, else None."""
    record = state.read_record()
    if set(record.components) != set(ORDER):
        return None
    if all(c.is_alive() and _answers(c) for c in record.components.values()):
        return record
    return None


def _commands(state: StateDir, ports: Mapping[str, int]) -> dict[str, list[str]]:
    python = sys.executable
    return {
        MOTO: [python, "-m", "moto.server", "-H", HOST, "-p", str(ports[MOTO])],
        SAGEMAKER: [python, "-m", "infra.local.sagemaker", "--host", HOST, "--port", str(ports[SAGEMAKER]),
                    "--state-dir", str(state.sagemaker)],
        ROUTER: [python, "-m", "infra.local.router", "--state-dir", str(state.root), "--port", str(ports[ROUTER])],
    }


def start(state_dir: str | os.PathLike[str] | None = None, *, progress: Progress = lambda _: None,
          extra_env: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT_SECONDS) -> tuple[CloudRecord, bool]:
    """Start the local cloud unless it runs; returns (record, started_now).

    `extra_env` reaches every process (tests use it to give the router their own handlers through
    `router.FUNCTIONS_ENV`, or a short retry backoff).
    """
    state = StateDir.at(state_dir)
    try:
        state.ensure()
    except OSError as err:
        raise CloudError(f"cannot use {state.root} as the state dir: {err.strerror}") from err
    with state.locked():
        record = running(state)
        if record is not None:
            return record, False
        _stop_components(state, state.read_record(), progress, save_snapshot=True)
        ports = {name: free_port() for name in ORDER}
        commands = _commands(state, ports)
        env = client_env(f"http://{HOST}:{ports[MOTO]}", f"http://{HOST}:{ports[SAGEMAKER]}")
        record = CloudRecord(env=env)
        clients = Clients(env)
        try:
            _start_component(state, record, MOTO, commands, ports, {**env, **(extra_env or {})}, timeout, progress)
            _provision(clients, provision.STACK_STEPS, progress)
            progress("restoring moto's data from the last snapshot")
            counts = snapshot.restore(clients, state.moto_snapshot)
            progress(f"restored {counts}" if any(counts.values()) else "no snapshot data to restore")
            _provision(clients, provision.LOCAL_STEPS, progress)
            _start_component(state, record, SAGEMAKER, commands, ports, {**env, **(extra_env or {})}, timeout, progress)
            _provision(clients, provision.SAGEMAKER_STEPS, progress)
            _start_component(state, record, ROUTER, commands, ports, {**env, **(extra_env or {})}, timeout, progress)
        except Exception:
            _stop_components(state, record, progress, save_snapshot=False)
            state.clear_record()
            raise
        return record, True


def _start_component(state: StateDir, record: CloudRecord, name: str, commands: Mapping[str, list[str]],
                     ports: Mapping[str, int], env: Mapping[str, str], timeout: float, progress: Progress) -> None:
    progress(f"starting {name} on port {ports[name]}")
    component = _spawn(state, name, commands[name], ports[name], env)
    record.components[name] = component
    state.write_record(record)  # recorded before waiting, so a failed start is still stopped by PID
    _wait_ready(component, timeout)
    progress(f"{name} ready at {component.url} (pid {component.pid})")


def _provision(clients: Clients, steps: list[provision.Step], progress: Progress) -> None:
    for description, step in steps:
        try:
            step(clients)
        except provision.ProvisionError as err:
            raise CloudError(str(err)) from err
        progress(f"provisioned {description}")


def stop(state_dir: str | os.PathLike[str] | None = None, *, progress: Progress = lambda _: None,
         grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """Stop what `start` recorded (saving moto's data first); returns the names of the stopped components."""
    state = StateDir.at(state_dir)
    with state.locked():
        record = state.read_record()
        stopped = _stop_components(state, record, progress, save_snapshot=True, grace=grace)
        state.clear_record()
        return stopped


def _stop_components(state: StateDir, record: CloudRecord, progress: Progress, *, save_snapshot: bool,
                     grace: float = STOP_GRACE_SECONDS) -> list[str]:
    stopped = []
    for name in reversed(ORDER):
        component = record.components.get(name)
        if component is None:
            continue
        if name == MOTO and save_snapshot and component.is_alive() and _answers(component):
            progress("saving moto's data")
            counts = snapshot.save(Clients(record.env), state.moto_snapshot, kinesis_delivered=_delivered(state))
            progress(f"saved {counts}")
        if component.is_alive():
            progress(f"stopping {name} (pid {component.pid})")
            terminate(component, grace)
            stopped.append(name)
        else:
            progress(f"{name} (pid {component.pid}) was not running; record removed")
    return stopped


def _delivered(state: StateDir) -> dict[str, Any]:
    """The router's Kinesis checkpoints, so the snapshot keeps only records it has not delivered."""
    return Checkpoints(state.router / "checkpoints.json").streams()


def terminate(component: Component, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the component's process group, SIGKILL it after `grace` s; then end any leftover descendants."""
    below = descendants(component.pid)
    _end(component.pid, component.command, grace)
    for pid, argv in below:
        if pid_alive(pid, argv):  # the argv check keeps a recycled PID safe
            logger.warning("%s left pid %d running; stopping it", component.name, pid)
            _end(pid, argv, grace)
    if component.is_alive():
        raise CloudError(f"{component.name} (pid {component.pid}) survived SIGKILL")


def _end(pid: int, command: list[str] | None, grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        _signal(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid, command):
                _reap(pid)
                return
            time.sleep(0.1)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (started in this process), else nothing."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    url: str
    alive: bool
    log: str


def status(state_dir: str | os.PathLike[str] | None = None) -> list[ComponentStatus]:
    record = StateDir.at(state_dir).read_record()
    return [
        ComponentStatus(c.name, c.pid, c.url, c.is_alive() and _answers(c), c.log)
        for name in ORDER if (c := record.components.get(name)) is not None
    ]


def inventory(env: Mapping[str, str]) -> dict[str, Any]:
    """Counts of what the local cloud holds, for `local status` (each count or the error reading it)."""
    clients = Clients(env)
    readers: dict[str, Callable[[], Any]] = {
        "S3 objects": lambda: sum(page.get("KeyCount", 0) for page in clients("s3").get_paginator("list_objects_v2")
                                  .paginate(Bucket=clients.bucket)),
        "Kinesis streams": lambda: len(clients("kinesis").list_streams()["StreamNames"]),
        "DynamoDB tables": lambda: len(clients("dynamodb").list_tables()["TableNames"]),
        "Predictions": lambda: clients("dynamodb").describe_table(TableName=config.PREDICTIONS_TABLE)["Table"]["ItemCount"],
        "EventBridge rules": lambda: len(clients("events").list_rules(EventBusName=config.EVENT_BUS_NAME)["Rules"]),
        "Dead letters (trigger)": lambda: _queue_depth(clients, provision.TRIGGER_DLQ),
        "Dead letters (inference)": lambda: _queue_depth(clients, provision.INFERENCE_DLQ),
        "Pipelines": lambda: len(clients("sagemaker").list_pipelines()["PipelineSummaries"]),
        "Pipeline executions": lambda: sum(
            len(page["PipelineExecutionSummaries"]) for page in clients("sagemaker")
            .get_paginator("list_pipeline_executions").paginate(PipelineName=config.PIPELINE_NAME)),
        "Model packages": lambda: len(clients("sagemaker").list_model_packages(
            ModelPackageGroupName=config.MODEL_PACKAGE_GROUP)["ModelPackageSummaryList"]),
        "Endpoints": lambda: len(clients("sagemaker").list_endpoints()["Endpoints"]),
    }
    counts: dict[str, Any] = {}
    for name, read in readers.items():
        try:
            counts[name] = read()
        except Exception as exc:  # one unreadable count must not hide the others
            counts[name] = f"unavailable ({type(exc).__name__})"
    return counts


def _queue_depth(clients: Clients, name: str) -> int:
    attributes = clients("sqs").get_queue_attributes(
        QueueUrl=provision.queue_url(clients, name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def read_env(state_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The client variables of the running cloud; CloudError when it does not run."""
    record = running(StateDir.at(state_dir))
    if record is None:
        raise CloudError(f"the local cloud is not running (state dir {StateDir.at(state_dir).root}); run `samay local up`")
    return dict(record.env)
