"""The job runner against moto's S3: inputs at the remapped paths, env, outputs, sharding, failures."""
from __future__ import annotations

import io
import json
import tarfile
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from infra.local.jobs import JobFailed, JobStopped, run_processing_job, run_training_job

BUCKET = "jobs-bucket"

PROCESS_SCRIPT = """
import argparse, json, os, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
config = json.loads(pathlib.Path(args.data).parents[2].joinpath("config/resourceconfig.json").read_text())
seen = sorted(str(p.relative_to(args.data)) for p in pathlib.Path(args.data).rglob("*") if p.is_file())
host = config["current_host"]
out = pathlib.Path(args.out) / host
out.mkdir(parents=True)
(out / "seen.json").write_text(json.dumps({
    "seen": seen, "hosts": config["hosts"], "greeting": os.environ.get("GREETING"),
    "data": args.data, "python": sys.executable, "cwd": os.getcwd(),
}))
message = pathlib.Path(args.data).parents[2] / "output" / "message"
message.write_text("processed " + host)
"""

TRAIN_SCRIPT = """
import argparse, json, os, pathlib
from helper import label
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--learning-rate", type=float, required=True)
parser.add_argument("--model_dir")
args = parser.parse_args()
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "1").mkdir(parents=True)
(model / "1" / "weights.json").write_text(json.dumps({
    "epochs": args.epochs, "learning_rate": args.learning_rate, "model_dir": args.model_dir, "label": label(),
    "train_files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])),
    "channels": json.loads(os.environ["SM_CHANNELS"]), "hps": json.loads(os.environ["SM_HPS"]),
    "hp_epochs": os.environ["SM_HP_EPOCHS"], "hosts": json.loads(os.environ["SM_HOSTS"]),
    "current_host": os.environ["SM_CURRENT_HOST"], "cwd": os.getcwd(),
    "entry_point": os.environ["SM_USER_ENTRY_POINT"], "env_flag": os.environ.get("FLAG"),
    "training_env_model_dir": json.loads(os.environ["SM_TRAINING_ENV"])["model_dir"],
}))
pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json").write_text('{"loss": 0.5}')
"""

FAILING_SCRIPT = """
import sys
print("starting")
raise SystemExit("ValueError: the manifest has no labelled rows")
"""


@pytest.fixture
def s3(aws_endpoint: str):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def put(s3, key: str, body: str | bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def keys_under(s3, prefix: str) -> list[str]:
    return sorted(obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def read_json(s3, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def processing_request(
    code_uri: str,
    data_uri: str,
    *,
    count: int = 1,
    distribution: str = "FullyReplicated",
    script: str = "/opt/ml/processing/input/code/job.py",
) -> dict:
    return {
        "ProcessingJobName": "job-1",
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": count, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}},
        "AppSpecification": {
            "ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/sklearn:1.2",
            "ContainerEntrypoint": ["python3", script],
            "ContainerArguments": ["--data", "/opt/ml/processing/input/data", "--out=/opt/ml/processing/output/result"],
        },
        "ProcessingInputs": [
            {"InputName": "code", "S3Input": {"S3Uri": code_uri, "LocalPath": "/opt/ml/processing/input/code",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File",
                                              "S3DataDistributionType": "FullyReplicated"}},
            {"InputName": "data", "S3Input": {"S3Uri": data_uri, "LocalPath": "/opt/ml/processing/input/data",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File",
                                              "S3DataDistributionType": distribution}},
        ],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "result", "S3Output": {"S3Uri": f"s3://{BUCKET}/out/result", "LocalPath": "/opt/ml/processing/output/result",
                                                 "S3UploadMode": "EndOfJob"}},
        ]},
        "Environment": {"GREETING": "hello"},
        "RoleArn": "arn:aws:iam::123456789012:role/samay-sagemaker-execution",
    }


def put_audio(s3, count: int) -> str:
    for i in range(count):
        put(s3, f"raw/audio/ds{i % 2}/rec{i}.wav", f"wav {i}")
    put(s3, "raw/audio2/not-mine.wav", "other prefix")
    return f"s3://{BUCKET}/raw/audio"


def test_run_processing_job_downloads_runs_and_uploads(s3, tmp_path: Path) -> None:
    # GIVEN a script and three data objects in S3
    code_uri = put(s3, "code/job.py", PROCESS_SCRIPT)
    data_uri = put_audio(s3, 3)

    # WHEN the job runs
    described = run_processing_job(processing_request(code_uri, data_uri), tmp_path / "job", tmp_path / "job.log")

    # THEN the script saw every object at the remapped LocalPath, its env and the local venv's Python
    seen = read_json(s3, "out/result/algo-1/seen.json")
    assert seen["seen"] == ["ds0/rec0.wav", "ds0/rec2.wav", "ds1/rec1.wav"]
    assert seen["data"] == str(tmp_path / "job/algo-1/opt/ml/processing/input/data")
    assert seen["greeting"] == "hello"
    assert seen["hosts"] == ["algo-1"]
    assert Path(seen["python"]).parent == Path(__import__("sys").executable).parent
    assert seen["cwd"] == str(tmp_path / "job/algo-1")
    # AND the describe fields echo the request with the exit message the script wrote
    assert described["ProcessingJobStatus"] == "Completed"
    assert described["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"s3://{BUCKET}/out/result"
    assert described["ProcessingEndTime"] >= described["ProcessingStartTime"]
    assert described["ExitMessage"] == "processed algo-1"
    assert described["ProcessingJobArn"].endswith(":processing-job/job-1")
    # AND the log holds the instance's output
    assert (tmp_path / "job.log").is_file()


def test_run_processing_job_sharded_by_s3_key_splits_keys_disjointly_and_completely(s3, tmp_path: Path) -> None:
    code_uri = put(s3, "code/job.py", PROCESS_SCRIPT)
    data_uri = put_audio(s3, 5)

    run_processing_job(processing_request(code_uri, data_uri, count=2, distribution="ShardedByS3Key"), tmp_path / "job", tmp_path / "job.log")

    first = read_json(s3, "out/result/algo-1/seen.json")
    second = read_json(s3, "out/result/algo-2/seen.json")
    assert first["hosts"] == second["hosts"] == ["algo-1", "algo-2"]
    assert set(first["seen"]).isdisjoint(second["seen"])
    assert sorted(first["seen"] + second["seen"]) == [f"ds{i % 2}/rec{i}.wav" for i in (0, 2, 4, 1, 3)]
    assert first["seen"] and second["seen"]
    # each instance keeps its own log beside its root
    assert (tmp_path / "job/algo-1.log").is_file() and (tmp_path / "job/algo-2.log").is_file()


def test_run_processing_job_fully_replicated_gives_every_instance_everything(s3, tmp_path: Path) -> None:
    code_uri = put(s3, "code/job.py", PROCESS_SCRIPT)
    data_uri = put_audio(s3, 3)

    run_processing_job(processing_request(code_uri, data_uri, count=2), tmp_path / "job", tmp_path / "job.log")

    assert read_json(s3, "out/result/algo-1/seen.json")["seen"] == read_json(s3, "out/result/algo-2/seen.json")["seen"]


def test_run_processing_job_failing_script_is_job_failed_with_its_error(s3, tmp_path: Path) -> None:
    code_uri = put(s3, "code/job.py", FAILING_SCRIPT)
    data_uri = put_audio(s3, 1)

    with pytest.raises(JobFailed) as caught:
        run_processing_job(processing_request(code_uri, data_uri), tmp_path / "job", tmp_path / "job.log")

    assert caught.value.reason.startswith("AlgorithmError: algo-1 exited with code 1")
    assert "ValueError: the manifest has no labelled rows" in caught.value.reason
    assert "starting" in (tmp_path / "job.log").read_text()
    assert keys_under(s3, "out/") == []


def test_run_processing_job_empty_input_prefix_is_client_error(s3, tmp_path: Path) -> None:
    code_uri = put(s3, "code/job.py", PROCESS_SCRIPT)

    with pytest.raises(JobFailed) as caught:
        run_processing_job(processing_request(code_uri, f"s3://{BUCKET}/nothing/here"), tmp_path / "job", tmp_path / "job.log")

    assert caught.value.reason == f"ClientError: No S3 objects found under S3 URL 's3://{BUCKET}/nothing/here'"


def test_run_processing_job_manifest_key_escaping_the_input_is_client_error(s3, tmp_path: Path) -> None:
    manifest_uri = put(s3, "manifests/escape.json", json.dumps([{"prefix": f"s3://{BUCKET}/data/"}, "../../../../escaped.txt"]))
    put(s3, "data/../../../../escaped.txt", "outside")
    request = processing_request(put(s3, "code/job.py", PROCESS_SCRIPT), manifest_uri)
    request["ProcessingInputs"][1]["S3Input"]["S3DataType"] = "ManifestFile"

    with pytest.raises(JobFailed, match="would land outside") as caught:
        run_processing_job(request, tmp_path / "job", tmp_path / "job.log")

    assert caught.value.reason.startswith("ClientError: ")
    assert list(tmp_path.rglob("escaped.txt")) == []


def test_run_processing_job_without_entrypoint_is_client_error(s3, tmp_path: Path) -> None:
    request = processing_request(put(s3, "code/job.py", PROCESS_SCRIPT), put_audio(s3, 1))
    del request["AppSpecification"]["ContainerEntrypoint"]

    with pytest.raises(JobFailed, match="ContainerEntrypoint is required locally"):
        run_processing_job(request, tmp_path / "job", tmp_path / "job.log")


def test_run_processing_job_stop_event_stops_the_job(s3, tmp_path: Path) -> None:
    request = processing_request(put(s3, "code/job.py", "import time\ntime.sleep(120)\n"), put_audio(s3, 1))
    stop = threading.Event()
    stop.set()

    with pytest.raises(JobStopped, match="^Stopped: "):
        run_processing_job(request, tmp_path / "job", tmp_path / "job.log", stop=stop)

    assert keys_under(s3, "out/") == []


def test_run_processing_job_over_max_runtime_fails(s3, tmp_path: Path) -> None:
    request = processing_request(put(s3, "code/job.py", "import time\ntime.sleep(120)\n"), put_audio(s3, 1))
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}

    with pytest.raises(JobFailed, match="MaxRuntimeInSeconds"):
        run_processing_job(request, tmp_path / "job", tmp_path / "job.log")


def framework_runproc(user_script: str) -> str:
    """The SDK's own runproc.sh text, as FrameworkProcessor generates and uploads it."""
    from sagemaker.processing import FrameworkProcessor

    return FrameworkProcessor._generate_framework_script(SimpleNamespace(command=["python3"]), user_script)


def framework_request(s3, requirements: str) -> dict:
    bundle = tar_gz({"job.py": PROCESS_SCRIPT, "requirements.txt": requirements})
    put(s3, "code/sourcedir.tar.gz", bundle)
    runproc = put(s3, "entry/runproc.sh", framework_runproc("job.py"))
    request = processing_request(f"s3://{BUCKET}/code/sourcedir.tar.gz", put_audio(s3, 2))
    request["ProcessingInputs"].append(
        {"InputName": "entrypoint", "S3Input": {"S3Uri": runproc, "LocalPath": "/opt/ml/processing/input/entrypoint",
                                                "S3DataType": "S3Prefix", "S3InputMode": "File",
                                                "S3DataDistributionType": "FullyReplicated"}}
    )
    request["AppSpecification"]["ContainerEntrypoint"] = ["/bin/bash", "/opt/ml/processing/input/entrypoint/runproc.sh"]
    return request


def test_run_processing_job_runs_framework_processor_runproc_sh(s3, tmp_path: Path) -> None:
    # GIVEN the SDK's runproc.sh, a source bundle and requirements this environment already satisfies
    request = framework_request(s3, "requests\nboto3>=1\n")

    # WHEN the job runs
    run_processing_job(request, tmp_path / "job", tmp_path / "job.log")

    # THEN the script ran from the untarred bundle in the remapped code dir
    seen = read_json(s3, "out/result/algo-1/seen.json")
    assert seen["seen"] == ["ds0/rec0.wav", "ds1/rec1.wav"]
    assert seen["cwd"] == str(tmp_path / "job/algo-1/opt/ml/processing/input/code")
    assert "Requirement already satisfied: requests" in (tmp_path / "job.log").read_text()


def test_run_processing_job_runproc_sh_unmet_requirement_fails_without_installing(s3, tmp_path: Path) -> None:
    request = framework_request(s3, "samay-package-that-does-not-exist==9.9\n")

    with pytest.raises(JobFailed) as caught:
        run_processing_job(request, tmp_path / "job", tmp_path / "job.log")

    assert "No matching distribution found for samay-package-that-does-not-exist==9.9" in caught.value.reason
    assert "exited with code 1" in caught.value.reason


def training_request(s3, *, script: str = TRAIN_SCRIPT, requirements: str | None = None, count: int = 1) -> dict:
    files = {"train.py": script, "helper.py": "def label():\n    return 'from-helper'\n"}
    if requirements is not None:
        files["requirements.txt"] = requirements
    submit = put(s3, "code/train/sourcedir.tar.gz", tar_gz(files))
    put(s3, "data/train/part-0.npz", "x")
    put(s3, "data/train/part-1.npz", "y")
    return {
        "TrainingJobName": "train-1",
        "AlgorithmSpecification": {"TrainingImage": "tensorflow-training:2.16-cpu-py310", "TrainingInputMode": "File"},
        "HyperParameters": {
            "epochs": "3",
            "learning-rate": "0.01",
            "model_dir": '"s3://jobs-bucket/train-1/model"',
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(submit),
            "sagemaker_region": '"us-east-1"',
        },
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train", "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/"},
        "ResourceConfig": {"InstanceCount": count, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Environment": {"FLAG": "on"},
        "RoleArn": "arn:aws:iam::123456789012:role/samay-sagemaker-execution",
    }


def model_files(s3, key: str) -> dict[str, bytes]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def test_run_training_job_runs_script_mode_and_uploads_model(s3, tmp_path: Path) -> None:
    # WHEN a script-mode training job runs
    described = run_training_job(training_request(s3), tmp_path / "job", tmp_path / "job.log")

    # THEN model.tar.gz is at the contract path and holds what the script wrote into SM_MODEL_DIR
    model_uri = f"s3://{BUCKET}/models/train-1/output/model.tar.gz"
    assert described["ModelArtifacts"] == {"S3ModelArtifacts": model_uri}
    assert described["TrainingJobStatus"] == "Completed"
    weights = json.loads(model_files(s3, "models/train-1/output/model.tar.gz")["1/weights.json"])
    # AND the user hyperparameters reached the script as decoded args, the sagemaker_* ones did not
    assert (weights["epochs"], weights["learning_rate"]) == (3, 0.01)
    assert weights["model_dir"] == "s3://jobs-bucket/train-1/model"
    assert weights["hps"] == {"epochs": 3, "learning-rate": 0.01, "model_dir": "s3://jobs-bucket/train-1/model"}
    assert weights["hp_epochs"] == "3"
    # AND the toolkit's environment: channels, hosts, code dir as cwd and import root
    assert weights["train_files"] == ["part-0.npz", "part-1.npz"]
    assert weights["channels"] == ["train"]
    assert weights["hosts"] == ["algo-1"] and weights["current_host"] == "algo-1"
    assert weights["cwd"] == str(tmp_path / "job/algo-1/opt/ml/code")
    assert weights["label"] == "from-helper"
    assert weights["entry_point"] == "train.py"
    assert weights["env_flag"] == "on"
    assert weights["training_env_model_dir"] == str(tmp_path / "job/algo-1/opt/ml/model")
    assert model_files(s3, "models/train-1/output/output.tar.gz") == {"metrics.json": b'{"loss": 0.5}'}
    hyperparameters = json.loads((tmp_path / "job/algo-1/opt/ml/input/config/hyperparameters.json").read_text())
    assert hyperparameters["sagemaker_program"] == '"train.py"'


def test_run_training_job_failing_script_reports_failure_file_and_tail(s3, tmp_path: Path) -> None:
    script = (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['SM_OUTPUT_DIR'], 'failure').write_text('not enough classes: 1')\n"
        "raise RuntimeError('training diverged')\n"
    )

    with pytest.raises(JobFailed) as caught:
        run_training_job(training_request(s3, script=script), tmp_path / "job", tmp_path / "job.log")

    assert caught.value.reason.startswith("AlgorithmError: not enough classes: 1 | AlgorithmError: algo-1 exited with code 1")
    assert "RuntimeError: training diverged" in caught.value.reason
    assert keys_under(s3, "models/") == []


def test_run_training_job_unmet_requirement_fails_clearly(s3, tmp_path: Path) -> None:
    with pytest.raises(JobFailed) as caught:
        run_training_job(training_request(s3, requirements="requests\nsamay-not-installed>=1\n"), tmp_path / "job", tmp_path / "job.log")

    assert "requirements.txt" in caught.value.reason
    assert "samay-not-installed>=1 (not installed)" in caught.value.reason
    assert "requests" not in caught.value.reason.split(": ", 2)[-1]


def test_run_training_job_without_sagemaker_program_is_client_error(s3, tmp_path: Path) -> None:
    request = training_request(s3)
    del request["HyperParameters"]["sagemaker_program"]

    with pytest.raises(JobFailed, match="sagemaker_program is missing"):
        run_training_job(request, tmp_path / "job", tmp_path / "job.log")


def test_run_training_job_two_instances_merge_model_dirs(s3, tmp_path: Path) -> None:
    script = (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['SM_MODEL_DIR'], os.environ['SM_CURRENT_HOST'] + '.txt').write_text('ok')\n"
    )

    run_training_job(training_request(s3, script=script, count=2), tmp_path / "job", tmp_path / "job.log")

    assert model_files(s3, "models/train-1/output/model.tar.gz") == {"algo-1.txt": b"ok", "algo-2.txt": b"ok"}
