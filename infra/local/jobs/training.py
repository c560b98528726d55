"""Run a CreateTrainingJob request locally, the way sagemaker-training-toolkit runs a script-mode job.

Per instance: channels downloaded to `/opt/ml/input/data/<channel>`, `/opt/ml/input/config/
{hyperparameters,inputdataconfig,resourceconfig}.json` written, `sagemaker_submit_directory`
extracted into `/opt/ml/code`, its `requirements.txt` checked against this environment (never
installed into it), then `python <sagemaker_program> --<hp> <value> ...` run from the code dir with
the toolkit's SM_* variables. The model directories of all hosts are merged and packed as
`{S3OutputPath}/{TrainingJobName}/output/model.tar.gz`, `/opt/ml/output/data` as `output.tar.gz`
beside it, as the SDK's local mode merges them.

Hyperparameter values arrive JSON-encoded (`'"train.py"'`, `'3'`); like the toolkit they are decoded
where they parse as JSON and kept as strings where not. `sagemaker_*` ones configure the run and are
not passed to the script.
"""
from __future__ import annotations

import json
import logging
import threading
import os
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infra.local.jobs import s3io
from infra.local.jobs.contract import (
    Instance,
    base_environment,
    host_names,
    resource_config,
    run_instances,
    write_json,
)
from infra.local.jobs.errors import JobFailed, JobStopped
from infra.local.jobs.requirements import unmet_requirements
from lambdas.shared.config import LOCAL_ACCOUNT_ID, Settings

logger = logging.getLogger(__name__)

SAGEMAKER_PREFIX = "sagemaker_"
PROGRAM = "sagemaker_program"
SUBMIT_DIRECTORY = "sagemaker_submit_directory"


def training_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{Settings.from_env().region}:{LOCAL_ACCOUNT_ID}:training-job/{name.lower()}"


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            decoded[name] = json.loads(value)
        except (TypeError, ValueError):
            decoded[name] = value
    return decoded


def _arg_value(value: Any) -> str:
    """The toolkit's rendering of a value on the command line (mapping.to_cmd_args)."""
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return "" if value is None else str(value)


def cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name in sorted(hyperparameters):
        args += [f"--{name}" if len(name) > 1 else f"-{name}", _arg_value(hyperparameters[name])]
    return args


def _env_value(value: Any) -> str:
    """The toolkit's rendering of a value in an SM_* variable (mapping.to_env_vars)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _Layout:
    """The container paths of one training instance, below its root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opt_ml = root / "opt/ml"
        self.code = self.opt_ml / "code"
        self.model = self.opt_ml / "model"
        self.input = self.opt_ml / "input"
        self.config = self.input / "config"
        self.data = self.input / "data"
        self.output = self.opt_ml / "output"
        self.output_data = self.output / "data"
        self.intermediate = self.output / "intermediate"

    def create(self) -> None:
        for path in (self.code, self.model, self.config, self.data, self.output_data, self.intermediate):
            path.mkdir(parents=True, exist_ok=True)


def _channel_config(channel: dict, input_mode: str) -> dict:
    source = channel["DataSource"].get("S3DataSource")
    if source is None:
        raise JobFailed(f"ClientError: channel {channel['ChannelName']!r}: only S3DataSource is supported locally")
    config = {
        "TrainingInputMode": channel.get("InputMode", input_mode),
        "S3DistributionType": source.get("S3DataDistributionType", s3io.FULLY_REPLICATED),
        "RecordWrapperType": channel.get("RecordWrapperType", "None"),
    }
    if "ContentType" in channel:
        config["ContentType"] = channel["ContentType"]
    if config["TrainingInputMode"] not in ("File", "FastFile"):
        raise JobFailed(f"ClientError: channel {channel['ChannelName']!r}: input mode {config['TrainingInputMode']} is not supported locally")
    return config


def _download_channels(request: dict, layout: _Layout, index: int, count: int) -> None:
    for channel in request.get("InputDataConfig", []):
        source = channel["DataSource"]["S3DataSource"]
        objects = s3io.input_objects(source["S3Uri"], source.get("S3DataType", "S3Prefix"))
        mine = s3io.shard(objects, source.get("S3DataDistributionType", s3io.FULLY_REPLICATED), index, count)
        s3io.download_objects(mine, layout.data / channel["ChannelName"])


def _install_code(submit_directory: str, layout: _Layout) -> None:
    """Download and extract the source bundle into /opt/ml/code, then check its requirements."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "sourcedir.tar.gz"
        s3io.download_file(submit_directory, bundle)
        try:
            with tarfile.open(bundle) as archive:
                archive.extractall(layout.code, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise JobFailed(f"ClientError: {submit_directory} is not a readable tar.gz: {exc}") from exc
    requirements = layout.code / "requirements.txt"
    unmet = unmet_requirements(requirements) if requirements.is_file() else []
    if unmet:
        raise JobFailed(
            "ClientError: requirements.txt of the source bundle is not satisfied by the local environment "
            f"(install them into the venv yourself): {'; '.join(unmet)}"
        )


def _sm_environment(request: dict, layout: _Layout, host: str, hosts: list[str], hyperparameters: dict) -> dict[str, str]:
    channels = sorted(c["ChannelName"] for c in request.get("InputDataConfig", []))
    user_hps = {k: v for k, v in hyperparameters.items() if not k.startswith(SAGEMAKER_PREFIX)}
    framework = {k: v for k, v in hyperparameters.items() if k.startswith(SAGEMAKER_PREFIX)}
    instance_type = request.get("ResourceConfig", {}).get("InstanceType", "local")
    program = str(hyperparameters[PROGRAM])
    training_env = {
        "additional_framework_parameters": {k: v for k, v in framework.items() if k not in (PROGRAM, SUBMIT_DIRECTORY)},
        "channel_input_dirs": {c: str(layout.data / c) for c in channels},
        "current_host": host,
        "current_instance_type": instance_type,
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": str(layout.config),
        "input_data_config": json.loads((layout.config / "inputdataconfig.json").read_text()),
        "input_dir": str(layout.input),
        "is_master": host == hosts[0],
        "job_name": request["TrainingJobName"],
        "log_level": 20,
        "master_hostname": hosts[0],
        "model_dir": str(layout.model),
        "module_dir": str(hyperparameters.get(SUBMIT_DIRECTORY, layout.code)),
        "module_name": program[:-3] if program.endswith(".py") else program,
        "network_interface_name": "eth0",
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
        "output_data_dir": str(layout.output_data),
        "output_dir": str(layout.output),
        "output_intermediate_dir": str(layout.intermediate),
        "resource_config": resource_config(host, hosts, instance_type),
        "user_entry_point": program,
    }
    env = {f"SM_{key.upper()}": _env_value(value) for key, value in training_env.items() if key not in ("hyperparameters", "channel_input_dirs", "additional_framework_parameters")}
    env.update(
        SM_HPS=_env_value(user_hps),
        SM_CHANNELS=_env_value(channels),
        SM_FRAMEWORK_PARAMS=_env_value(training_env["additional_framework_parameters"]),
        SM_USER_ARGS=_env_value(cmd_args(user_hps)),
        SM_TRAINING_ENV=_env_value(training_env),
        SM_INPUT_DATA_CONFIG=_env_value(training_env["input_data_config"]),
        SAGEMAKER_BASE_DIR=str(layout.opt_ml),
        TRAINING_JOB_NAME=request["TrainingJobName"],
        PYTHONPATH=os.pathsep.join(filter(None, [str(layout.code), os.environ.get("PYTHONPATH", "")])),
    )
    env.update({f"SM_CHANNEL_{c.upper()}": str(layout.data / c) for c in channels})
    env.update({f"SM_HP_{k.upper()}": _env_value(v) for k, v in user_hps.items()})
    return env


def _prepare_instance(request: dict, job_dir: Path, host: str, hosts: list[str], hyperparameters: dict) -> Instance:
    layout = _Layout(job_dir / host)
    layout.create()
    input_mode = request.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
    channels = {c["ChannelName"]: _channel_config(c, input_mode) for c in request.get("InputDataConfig", [])}
    write_json(layout.config / "hyperparameters.json", request.get("HyperParameters", {}))
    write_json(layout.config / "inputdataconfig.json", channels)
    instance_type = request.get("ResourceConfig", {}).get("InstanceType", "local")
    write_json(layout.config / "resourceconfig.json", resource_config(host, hosts, instance_type))
    _download_channels(request, layout, hosts.index(host), len(hosts))
    _install_code(str(hyperparameters[SUBMIT_DIRECTORY]), layout)
    program = str(hyperparameters[PROGRAM])
    if not (layout.code / program).is_file():
        raise JobFailed(f"ClientError: sagemaker_program {program!r} is not in the source bundle {hyperparameters[SUBMIT_DIRECTORY]}")
    user_hps = {k: v for k, v in hyperparameters.items() if not k.startswith(SAGEMAKER_PREFIX)}
    env = base_environment({**(request.get("Environment") or {}), **_sm_environment(request, layout, host, hosts, hyperparameters)})
    return Instance(host=host, root=layout.root, command=[sys.executable, program, *cmd_args(user_hps)], env=env, cwd=layout.code)


def _pack(dirs: list[Path], target: Path) -> None:
    """tar.gz the merged content of `dirs` (later hosts overwrite earlier ones' files of the same name)."""
    with tarfile.open(target, "w:gz") as archive:
        for directory in dirs:
            for path in sorted(directory.rglob("*")):
                if path.is_file():
                    archive.add(path, arcname=path.relative_to(directory).as_posix())


def _failure_reason(job_failed: JobFailed, job_dir: Path, hosts: list[str]) -> str:
    """The failure file a script (or the toolkit) wrote in /opt/ml/output/failure first, then the log tail."""
    failures = [
        (job_dir / host / "opt/ml/output/failure").read_text(encoding="utf-8", errors="replace").strip()
        for host in hosts
        if (job_dir / host / "opt/ml/output/failure").is_file()
    ]
    failures = [text for text in failures if text]
    return f"AlgorithmError: {failures[0]} | {job_failed.reason}" if failures else job_failed.reason


def run_training_job(request: dict, job_dir: Path, log_path: Path, stop: threading.Event | None = None) -> dict:
    """Run the job to completion and return its DescribeTrainingJob fields; JobFailed otherwise."""
    started = datetime.now(timezone.utc)
    job_dir = Path(job_dir)
    name = request["TrainingJobName"]
    hyperparameters = decode_hyperparameters(request.get("HyperParameters") or {})
    for required in (PROGRAM, SUBMIT_DIRECTORY):
        if required not in hyperparameters:
            raise JobFailed(f"ClientError: hyperparameter {required} is missing: only script mode (a framework estimator) runs locally")
    hosts = host_names(int(request.get("ResourceConfig", {}).get("InstanceCount", 1)))
    instances = [_prepare_instance(request, job_dir, host, hosts, hyperparameters) for host in hosts]
    try:
        run_instances(instances, Path(log_path), request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"), stop)
    except JobStopped:
        raise
    except JobFailed as failed:
        raise JobFailed(_failure_reason(failed, job_dir, hosts)) from failed
    output_prefix = s3io.join_uri(request["OutputDataConfig"]["S3OutputPath"], f"{name}/output")
    model_uri = s3io.join_uri(output_prefix, "model.tar.gz")
    for archive_name, subdir in (("model.tar.gz", "opt/ml/model"), ("output.tar.gz", "opt/ml/output/data")):
        archive = job_dir / archive_name
        _pack([job_dir / host / subdir for host in hosts], archive)
        s3io.upload_file(archive, s3io.join_uri(output_prefix, archive_name))
    ended = datetime.now(timezone.utc)
    described = {key: value for key, value in request.items() if key != "Tags"}
    described.update(
        TrainingJobArn=training_job_arn(name),
        TrainingJobStatus="Completed",
        SecondaryStatus="Completed",
        ModelArtifacts={"S3ModelArtifacts": model_uri},
        TrainingStartTime=started,
        TrainingEndTime=ended,
        TrainingTimeInSeconds=int((ended - started).total_seconds()),
        BillableTimeInSeconds=int((ended - started).total_seconds()) * len(hosts),
    )
    return described
