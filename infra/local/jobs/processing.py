"""Run a CreateProcessingJob request locally, under the processing container contract.

Per instance: S3 inputs downloaded into the remapped LocalPaths (FullyReplicated or sharded),
`/opt/ml/config/{resourceconfig,processingjobconfig}.json` written, every output LocalPath created,
ContainerEntrypoint + ContainerArguments run with `/opt/ml` remapped. Then each output LocalPath of
every instance is uploaded to its S3Uri (files keep their relative paths, instances merge into one
prefix), and `/opt/ml/output/message` becomes the ExitMessage.

Shell entrypoints: the SDK's FrameworkProcessor runs `/bin/bash <runproc.sh>`, a script it generated
that `cd`s into `/opt/ml/processing/input/code/`, untars the source bundle, pip-installs its
requirements and runs the user script. Its container paths are in the script text, where remapping
the arguments cannot reach, and without Docker there is no mount to put them at `/opt/ml`; so the
instance's downloaded copy of a shell entrypoint script has its `/opt/ml` paths rewritten the same way.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

from infra.local.jobs import s3io
from infra.local.jobs.contract import (
    Instance,
    base_environment,
    container_path,
    host_names,
    remap,
    resource_config,
    run_instances,
    write_json,
)
from infra.local.jobs.errors import JobFailed
from lambdas.shared.config import LOCAL_ACCOUNT_ID, Settings

logger = logging.getLogger(__name__)

SHELLS = {"bash", "sh"}
EXIT_MESSAGE_FILE = "/opt/ml/output/message"
MAX_EXIT_MESSAGE = 1024


def processing_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{Settings.from_env().region}:{LOCAL_ACCOUNT_ID}:processing-job/{name.lower()}"


def _s3_input(processing_input: dict) -> dict:
    if "S3Input" not in processing_input:
        raise JobFailed(
            f"ClientError: input {processing_input.get('InputName')!r}: only S3Input is supported locally"
        )
    s3_input = processing_input["S3Input"]
    if s3_input.get("S3InputMode", "File") != "File":
        raise JobFailed(f"ClientError: input {processing_input.get('InputName')!r}: only S3InputMode File is supported locally")
    return s3_input


def _s3_outputs(request: dict) -> list[dict]:
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for output in outputs:
        if "S3Output" not in output:
            raise JobFailed(f"ClientError: output {output.get('OutputName')!r}: only S3Output is supported locally")
    return [output["S3Output"] for output in outputs]


def _download_inputs(request: dict, root: Path, index: int, count: int) -> None:
    for processing_input in request.get("ProcessingInputs", []):
        s3_input = _s3_input(processing_input)
        objects = s3io.input_objects(s3_input["S3Uri"], s3_input.get("S3DataType", "S3Prefix"))
        distribution = s3_input.get("S3DataDistributionType", s3io.FULLY_REPLICATED)
        mine = s3io.shard(objects, distribution, index, count)
        s3io.download_objects(mine, container_path(root, s3_input["LocalPath"]))
        logger.info("%s: input %s: %d of %d objects", root.name, processing_input.get("InputName"), len(mine), len(objects))


def _rewrite_shell_entrypoint(entrypoint: list[str], root: Path) -> None:
    """Remap `/opt/ml` inside a downloaded script run by a shell (see the module docstring)."""
    if len(entrypoint) < 2 or Path(entrypoint[0]).name not in SHELLS or not entrypoint[1].startswith("/opt/ml/"):
        return
    script = container_path(root, entrypoint[1])
    if script.is_file():
        script.write_text(remap(script.read_text(encoding="utf-8"), root), encoding="utf-8")


def _prepare_instance(request: dict, job_dir: Path, host: str, hosts: list[str]) -> Instance:
    root = job_dir / host
    index, count = hosts.index(host), len(hosts)
    cluster = request["ProcessingResources"]["ClusterConfig"]
    write_json(root / "opt/ml/config/resourceconfig.json", resource_config(host, hosts, cluster.get("InstanceType", "local")))
    write_json(root / "opt/ml/config/processingjobconfig.json", request)
    (root / "opt/ml/output").mkdir(parents=True, exist_ok=True)
    for s3_output in _s3_outputs(request):
        container_path(root, s3_output["LocalPath"]).mkdir(parents=True, exist_ok=True)
    _download_inputs(request, root, index, count)
    app = request["AppSpecification"]
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint:
        raise JobFailed(
            f"ClientError: AppSpecification.ContainerEntrypoint is required locally: the entrypoint of "
            f"image {app.get('ImageUri')!r} cannot run without its container"
        )
    _rewrite_shell_entrypoint(entrypoint, root)
    command = [remap(part, root) for part in entrypoint + list(app.get("ContainerArguments") or [])]
    env = base_environment(request.get("Environment") or {})
    return Instance(host=host, root=root, command=command, env=env, cwd=root)


def _upload_outputs(request: dict, instances: list[Instance]) -> None:
    for s3_output in _s3_outputs(request):
        uploaded = sum(
            s3io.upload_tree(container_path(instance.root, s3_output["LocalPath"]), s3_output["S3Uri"])
            for instance in instances
        )
        logger.info("output %s: %d files", s3_output["S3Uri"], uploaded)


def _exit_message(instances: list[Instance]) -> str | None:
    messages = [
        path.read_text(encoding="utf-8", errors="replace")
        for path in (container_path(i.root, EXIT_MESSAGE_FILE) for i in instances)
        if path.is_file()
    ]
    return "".join(messages)[:MAX_EXIT_MESSAGE] if messages else None


def run_processing_job(request: dict, job_dir: Path, log_path: Path, stop: threading.Event | None = None) -> dict:
    """Run the job to completion and return its DescribeProcessingJob fields; JobFailed otherwise."""
    started = datetime.now(timezone.utc)
    name = request["ProcessingJobName"]
    count = int(request["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1))
    hosts = host_names(count)
    instances = [_prepare_instance(request, Path(job_dir), host, hosts) for host in hosts]
    max_runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    run_instances(instances, Path(log_path), max_runtime, stop)
    _upload_outputs(request, instances)
    described = {key: value for key, value in request.items() if key != "Tags"}
    described.update(
        ProcessingJobArn=processing_job_arn(name),
        ProcessingJobStatus="Completed",
        ProcessingStartTime=started,
        ProcessingEndTime=datetime.now(timezone.utc),
    )
    exit_message = _exit_message(instances)
    if exit_message is not None:
        described["ExitMessage"] = exit_message
    return described
