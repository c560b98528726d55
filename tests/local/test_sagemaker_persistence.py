"""State under --state-dir survives a restart of the service (what `samay local down` then `up` relies on)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from infra.local.sagemaker.models.backend import SageMakerBackend
from tests.local.conftest import (
    ROLE_ARN,
    definition,
    endpoint_config,
    fail_step,
    start_sagemaker_service,
    wait_for_endpoint,
    wait_for_execution,
)


def test_restart_keeps_pipelines_executions_packages_and_models(moto_endpoint, tmp_path: Path):
    state_dir = tmp_path / "sagemaker"
    with start_sagemaker_service(state_dir) as service:
        client = service.client()
        client.create_pipeline(PipelineName="Kept", RoleArn=ROLE_ARN, PipelineDefinition=definition(fail_step("F", "kept")))
        execution = client.start_pipeline_execution(PipelineName="Kept")["PipelineExecutionArn"]
        wait_for_execution(client, execution)
        client.create_model_package_group(ModelPackageGroupName="G")
        package = client.create_model_package(ModelPackageGroupName="G", ModelApprovalStatus="Approved",
                                              InferenceSpecification={"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                                                      "SupportedContentTypes": ["audio/wav"],
                                                                      "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]
        client.create_model(ModelName="m", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "i"})

    with start_sagemaker_service(state_dir) as service:
        client = service.client()
        described = client.describe_pipeline_execution(PipelineExecutionArn=execution)
        steps = client.list_pipeline_execution_steps(PipelineExecutionArn=execution)["PipelineExecutionSteps"]
        assert client.describe_pipeline(PipelineName="Kept")["PipelineName"] == "Kept"
        assert (described["PipelineExecutionStatus"], described["FailureReason"]) == ("Failed", "kept")
        assert [step["StepName"] for step in steps] == ["F"]
        assert client.describe_model_package(ModelPackageName=package)["ModelApprovalStatus"] == "Approved"
        assert client.create_model_package(ModelPackageGroupName="G", InferenceSpecification={
            "Containers": [{"Image": "i"}], "SupportedContentTypes": ["a"], "SupportedResponseMIMETypes": ["b"]},
        )["ModelPackageArn"].endswith("/g/2")
        assert client.describe_model(ModelName="m")["ModelName"] == "m"


def test_load_marks_executions_left_running_as_failed(tmp_path: Path):
    def never_run(backend: SageMakerBackend, arn: str) -> None:
        """The execution stays Executing, as when the service process is killed mid-run."""

    before = SageMakerBackend("123456789012", "us-east-1", tmp_path, launch_execution=never_run)
    before.create_pipeline("P", ROLE_ARN, definition(fail_step("F", "x")))
    arn = before.start_pipeline_execution("P")["PipelineExecutionArn"]
    seen: list[tuple[str, str, str]] = []

    after = SageMakerBackend("123456789012", "us-east-1", tmp_path, launch_execution=never_run,
                             on_status_change=lambda *change: seen.append(change))
    after.load()

    described = after.describe_pipeline_execution(arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert "restarted" in described["FailureReason"]
    assert seen == [("PipelineExecution", arn, "Failed")]


def test_restart_hosts_serving_endpoints_again_and_stops_hosts_on_shutdown(moto_endpoint, artifacts, tmp_path: Path):
    state_dir = tmp_path / "sagemaker"
    with start_sagemaker_service(state_dir) as service:
        client = service.client()
        client.create_endpoint(EndpointName="kept", EndpointConfigName=endpoint_config(client, "kept", artifacts["A"]))
        assert wait_for_endpoint(client, "kept")["EndpointStatus"] == "InService"
        first_host = _host_pid(service)

    assert not _alive(first_host)
    with start_sagemaker_service(state_dir) as service:
        client = service.client()
        described = wait_for_endpoint(client, "kept")
        answer = service.client("sagemaker-runtime").invoke_endpoint(EndpointName="kept", Body=b"1,2", ContentType="text/csv")
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        assert json.loads(answer["Body"].read())["tag"] == "A"
        second_host = _host_pid(service)
    assert second_host != first_host and not _alive(second_host)


def _host_pid(service) -> int:
    hosts = requests.get(f"{service.url}/_samay/health", timeout=10).json()["endpoint_hosts"]
    (host,) = hosts.values()
    return host["pid"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
