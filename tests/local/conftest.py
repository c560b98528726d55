"""The local SageMaker service for tests: a subprocess on a free port, stopped by its PID.

`sagemaker_service` (session) starts `python -m infra.local.sagemaker` beside the session's moto
server (S3 for definitions, property files and job data) and points AWS_ENDPOINT_URL_SAGEMAKER and
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME at it; `sagemaker` gives a boto3 client on a reset service.
`start_sagemaker_service(state_dir)` starts one more (tests of persistence across restarts).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from infra.local.provision import Clients
from lambdas.shared import aws, config
from tests.fixtures.models import model_tarball
from tests.fixtures.moto import free_port, wait_for_http


@dataclass(frozen=True)
class Service:
    url: str
    pid: int
    state_dir: Path
    log: Path

    def client(self, service: str = "sagemaker") -> Any:
        return boto3.session.Session().client(service, region_name="us-east-1", endpoint_url=self.url)


@contextmanager
def start_sagemaker_service(state_dir: Path) -> Iterator[Service]:
    """Run the service over `state_dir` until the block ends; its log is `state_dir/service.log`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = state_dir / "service.log"
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.local.sagemaker", "--host", "127.0.0.1", "--port", str(port),
             "--state-dir", str(state_dir), "--log-level", "DEBUG"],
            stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_http(f"{url}/_samay/health")
        except RuntimeError as err:
            raise RuntimeError(f"{err}; service log:\n{log.read_text()[-3000:]}") from None
        yield Service(url, proc.pid, state_dir, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def sagemaker_service(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with start_sagemaker_service(tmp_path_factory.mktemp("sagemaker-service")) as service:
        patch = pytest.MonkeyPatch()
        patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", service.url)
        patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", service.url)
        aws.client.cache_clear()
        try:
            yield service
        finally:
            patch.undo()
            aws.client.cache_clear()


@pytest.fixture
def sagemaker(sagemaker_service: Service, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 SageMaker client on an empty service (and an empty moto); the SDK is pointed at it too."""
    requests.post(f"{sagemaker_service.url}/_samay/reset", timeout=30).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker_service.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", sagemaker_service.url)
    aws.client.cache_clear()
    return sagemaker_service.client()


@pytest.fixture
def moto_clients(aws_endpoint: str) -> Clients:
    """The provisioning clients on the test's moto, with the variables the local cloud's processes get."""
    return Clients({
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAMAY_BUCKET": config.LOCAL_BUCKET,
    })


@pytest.fixture
def s3(aws_endpoint: str) -> Any:
    return boto3.session.Session().client("s3", region_name="us-east-1")


ROLE_ARN = "arn:aws:iam::123456789012:role/samay-sagemaker-execution"
TERMINAL = ("Succeeded", "Failed", "Stopped")


def definition(*steps: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> str:
    """A pipeline definition JSON of the shape the SDK writes."""
    return json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": parameters or [], "Steps": list(steps)})


def fail_step(name: str, message: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": message}}


def wait_for_execution(client: Any, execution_arn: str, timeout: float = 300.0) -> dict[str, Any]:
    """DescribePipelineExecution once the execution has ended (the limit only guards a hung run)."""
    deadline = time.monotonic() + timeout
    while True:
        described = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        if described["PipelineExecutionStatus"] in TERMINAL or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def steps_by_name(client: Any, execution_arn: str) -> dict[str, dict[str, Any]]:
    steps = client.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)["PipelineExecutionSteps"]
    return {step["StepName"]: step for step in steps}


# ---- a tiny model artifact (DESIGN 4.7 shape) for endpoint tests ---------------------------------

ENDPOINT_BUCKET = "endpoint-tests"
HANDLER = '''
import json


def input_handler(data, context):
    if context.request_content_type != "text/csv":
        raise ValueError(f"content type {context.request_content_type} is not text/csv")
    return json.dumps({"instances": [[float(v) for v in data.read().decode().split(",")]]})


def output_handler(response, context):
    predictions = json.loads(response.content)["predictions"]
    return json.dumps({"tag": "TAG", "predictions": predictions}), "application/json"
'''


@pytest.fixture
def artifacts(s3, savedmodel: Path) -> dict[str, str]:
    """Two artifacts of the same model whose handlers tag their answers "A" and "B"."""
    s3.create_bucket(Bucket=ENDPOINT_BUCKET)
    uris = {}
    for tag in ("A", "B"):
        body = model_tarball(savedmodel, HANDLER.replace("TAG", tag))
        s3.put_object(Bucket=ENDPOINT_BUCKET, Key=f"{tag}/model.tar.gz", Body=body)
        uris[tag] = f"s3://{ENDPOINT_BUCKET}/{tag}/model.tar.gz"
    return uris


def endpoint_config(sagemaker: Any, name: str, model_data_url: str) -> str:
    """Model `model-<name>` and endpoint config `config-<name>` serving `model_data_url`."""
    sagemaker.create_model(ModelName=f"model-{name}", ExecutionRoleArn=ROLE_ARN,
                           PrimaryContainer={"Image": "local/tfs", "ModelDataUrl": model_data_url})
    sagemaker.create_endpoint_config(EndpointConfigName=f"config-{name}", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"model-{name}", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    return f"config-{name}"


def wait_for_endpoint(sagemaker: Any, name: str) -> dict[str, Any]:
    """DescribeEndpoint once it is no longer Creating or Updating."""
    while True:
        described = sagemaker.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] not in ("Creating", "Updating"):
            return described
        time.sleep(0.2)
