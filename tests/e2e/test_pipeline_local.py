"""The real pipeline, built by the SDK, run by the local cloud: the gate's two branches, and sharding.

One run passes the gate (every step Succeeded, an Approved package, an endpoint that answers a WAV);
one with an unreachable AccuracyThreshold (1.01), a 2-model ensemble and two preprocessing instances
fails at the Fail step, registers nothing, and produced the same patient splits as the single-instance run.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import WaiterError

from lambdas.shared import aws
from lambdas.shared.config import ENDPOINT_NAME, MODEL_PACKAGE_GROUP
from pipelines.pipeline import get_pipeline
from steps.synth import synthesize_dataset
from tests.fixtures.cloud import LocalCloud, wait_until

ROLE = "arn:aws:iam::123456789012:role/samay-sagemaker-execution"
SPLITS = ("train", "validation", "test")


def _run(parameters: dict[str, Any]) -> Any:
    pipeline = get_pipeline(region="us-east-1", role=ROLE, default_bucket="samay-local")
    pipeline.upsert(role_arn=ROLE)
    execution = pipeline.start(parameters=parameters)
    try:
        execution.wait(delay=2, max_attempts=450)
    except WaiterError:
        pass  # a Failed execution ends the waiter with an error; the status is asserted by the caller
    return execution


def _steps(execution: Any) -> dict[str, dict[str, Any]]:
    return {step["StepName"]: step for step in execution.list_steps()}


def _split_files(cloud: LocalCloud, steps: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    sagemaker, s3 = cloud.client("sagemaker"), cloud.client("s3")
    job = sagemaker.describe_processing_job(ProcessingJobName=steps["Preprocess"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1])
    uris = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in job["ProcessingOutputConfig"]["Outputs"]}
    files = {}
    for split in SPLITS:
        bucket, prefix = uris[split].removeprefix("s3://").split("/", 1)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/").get("Contents", [])
        files[split] = {item["Key"].rsplit("/", 1)[-1] for item in listed if item["Key"].endswith(".npz")}
    return files


@pytest.fixture(scope="module")
def passing_run(shared_local_cloud: LocalCloud, staged_manifest: str) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:  # module-scoped: set up before `local_cloud` points the env
        for name, value in shared_local_cloud.env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        aws.client.cache_clear()
        yield _run({"InputDataUrl": staged_manifest, "Epochs": 12})
    aws.client.cache_clear()


@pytest.mark.cloud
def test_the_gate_passes_registers_and_deploys_a_model_that_answers(local_cloud: LocalCloud, passing_run: Any,
                                                                   tmp_path: Path) -> None:
    described = passing_run.describe()
    steps = _steps(passing_run)
    assert described["PipelineExecutionStatus"] == "Succeeded", [(s, v.get("FailureReason")) for s, v in steps.items()]
    assert {name: step["StepStatus"] for name, step in steps.items()} == {
        name: "Succeeded" for name in ("Preprocess", "Train", "Evaluate", "CheckAccuracy", "RegisterModel", "Deploy")
    }
    package_arn = steps["RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    sagemaker = local_cloud.client("sagemaker")
    assert sagemaker.describe_model_package(ModelPackageName=package_arn)["ModelApprovalStatus"] == "Approved"
    wait_until(lambda: sagemaker.describe_endpoint(EndpointName=ENDPOINT_NAME)["EndpointStatus"] == "InService",
               "the endpoint to be InService", timeout=180)
    wav = next((synthesize_dataset(tmp_path / "one", patients=1, seed=3, unlabelled=True).out / "audio").glob("*.wav"))
    answer = json.loads(local_cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=ENDPOINT_NAME, ContentType="audio/wav", Body=wav.read_bytes())["Body"].read())
    assert set(answer) == {"label", "probabilities", "model_version", "windows"}
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.cloud
def test_a_high_threshold_fails_at_the_fail_step_and_two_shards_split_like_one_with_an_ensemble(
    local_cloud: LocalCloud, passing_run: Any, staged_manifest: str
) -> None:
    sagemaker = local_cloud.client("sagemaker")
    packages_before = sagemaker.list_model_packages(ModelPackageGroupName=MODEL_PACKAGE_GROUP)["ModelPackageSummaryList"]
    # The same rows under another key: ProcessingInputs differ, so Preprocess is not a cache hit (AWS
    # keys a processing step's cache on AppSpecification, Environment and ProcessingInputs only).
    copy = staged_manifest.replace("/datasets/e2e/", "/datasets/e2e-sharded/")
    local_cloud.client("s3").copy_object(Bucket="samay-local", Key=copy.split("/", 3)[3],
                                         CopySource={"Bucket": "samay-local", "Key": staged_manifest.split("/", 3)[3]})
    # 1.01: no model can reach it (a 2-model ensemble scores 1.0 on this synthetic set).
    failing = _run({"InputDataUrl": copy, "Epochs": 12, "EnsembleSize": 2, "AccuracyThreshold": 1.01,
                    "ProcessingInstanceCount": 2})
    described = failing.describe()
    steps = _steps(failing)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert steps["Fail"]["StepStatus"] == "Failed"
    message = steps["Fail"]["Metadata"]["Fail"]["ErrorMessage"]
    assert "AccuracyThreshold = 1.01" in message and "accuracy.value = " in message
    # Evaluate scored the 2-model artifact that EnsembleSize asked Train for.
    training = sagemaker.describe_training_job(
        TrainingJobName=steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1])
    assert training["HyperParameters"]["members"] == "2"
    assert "RegisterModel" not in steps and "Deploy" not in steps
    assert "CacheHitResult" not in steps["Preprocess"], "the sharded run must really run Preprocess"
    job = sagemaker.describe_processing_job(ProcessingJobName=steps["Preprocess"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1])
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    assert sagemaker.list_model_packages(ModelPackageGroupName=MODEL_PACKAGE_GROUP)["ModelPackageSummaryList"] == packages_before
    one, two = _split_files(local_cloud, _steps(passing_run)), _split_files(local_cloud, steps)
    assert all(one[split] for split in SPLITS)
    assert one == two
