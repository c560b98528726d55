"""The deploy Lambda: create, repeat and refuse against moto's SageMaker; update in place against the
local cloud's SageMaker service, because moto 5.2 implements no UpdateEndpoint (its server answers 500)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lambdas.deploy import app
from lambdas.deploy.endpoint import endpoint_config_name, model_name
from lambdas.deploy.errors import InvalidDeployRequest, ModelPackageNotApproved, ModelPackageNotFound
from lambdas.shared import aws
from lambdas.shared.config import ENDPOINT_NAME, MODEL_PACKAGE_GROUP
from tests.fixtures.models import model_tarball
from tests.lambdas.context import LambdaContext

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    return {**json.loads((EVENTS / f"{name}.json").read_text()), **changes}


def register_package(status: str = "Approved") -> str:
    """A model package in the project's group, as the pipeline's RegisterModel step leaves it."""
    sm = aws.client("sagemaker")
    groups = sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
    if not any(group["ModelPackageGroupName"] == MODEL_PACKAGE_GROUP for group in groups):
        sm.create_model_package_group(ModelPackageGroupName=MODEL_PACKAGE_GROUP)
    return sm.create_model_package(
        ModelPackageGroupName=MODEL_PACKAGE_GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.19-cpu",
                    "ModelDataUrl": "s3://samay-test/pipelines/x/Train/model/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["audio/wav"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]


def test_deploy_creates_endpoint_for_approved_package(aws_endpoint: str) -> None:
    # GIVEN an Approved package (the one the event fixture names) and no endpoint
    arn = register_package()
    event = load_event("deploy_request")
    assert event["model_package_arn"] == arn
    # WHEN the pipeline's Deploy step invokes the function
    result = app.lambda_handler(event, LambdaContext())
    # THEN a model serving the package, a config and the endpoint exist, all named from the package
    assert result == {
        "endpoint_name": ENDPOINT_NAME,
        "endpoint_config_name": "samay-lung-sound-v1-m5-large-x1",
        "model_name": "samay-lung-sound-v1",
        "action": "created",
    }
    sm = aws.client("sagemaker")
    model = sm.describe_model(ModelName="samay-lung-sound-v1")
    assert model["PrimaryContainer"]["ModelPackageName"] == arn
    assert model["ExecutionRoleArn"] == event["role_arn"]
    [variant] = sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "samay-lung-sound-v1", "ml.m5.large", 1,
    )
    assert sm.describe_endpoint(EndpointName=ENDPOINT_NAME)["EndpointConfigName"] == result["endpoint_config_name"]


def test_repeated_deploy_changes_nothing(aws_endpoint: str) -> None:
    # GIVEN the endpoint already serves the package
    register_package()
    event = load_event("deploy_request")
    first = app.lambda_handler(event, LambdaContext())
    sm = aws.client("sagemaker")
    before = (sm.list_models()["Models"], sm.list_endpoint_configs()["EndpointConfigs"], sm.list_endpoints()["Endpoints"])
    # WHEN the same event is delivered again
    again = app.lambda_handler(event, LambdaContext())
    # THEN it reports "unchanged" with the same names and created nothing new
    assert again == {**first, "action": "unchanged"}
    after = (sm.list_models()["Models"], sm.list_endpoint_configs()["EndpointConfigs"], sm.list_endpoints()["Endpoints"])
    assert after == before


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_deploy_refuses_package_not_approved(aws_endpoint: str, status: str) -> None:
    # GIVEN a package that is not Approved
    arn = register_package(status)
    # WHEN it is deployed
    with pytest.raises(ModelPackageNotApproved) as refused:
        app.lambda_handler(load_event("deploy_request", model_package_arn=arn), LambdaContext())
    # THEN the error names the package and its status, and nothing was created
    assert str(refused.value) == f"model package {arn} is {status}, not Approved: refusing to deploy it"
    sm = aws.client("sagemaker")
    assert sm.list_models()["Models"] == [] and sm.list_endpoints()["Endpoints"] == []


def test_deploy_of_unknown_package_names_it(aws_endpoint: str) -> None:
    # GIVEN no package at all
    event = load_event("deploy_request")
    # WHEN / THEN the error names the missing package
    with pytest.raises(ModelPackageNotFound, match="model-package/samaylungsoundmodels/1 does not exist"):
        app.lambda_handler(event, LambdaContext())


def test_malformed_event_names_each_bad_field() -> None:
    # GIVEN an event with a bare package name, a bad endpoint name, no role and an unknown field
    event = load_event("deploy_request_malformed")
    # WHEN / THEN the error lists every problem by field, before any AWS call
    with pytest.raises(InvalidDeployRequest) as invalid:
        app.parse_request(event)
    message = str(invalid.value)
    for field in ("model_package_arn", "endpoint_name", "role_arn: Field required", "unexpected: Extra inputs"):
        assert field in message


def test_names_are_derived_from_the_package_and_stay_within_limits() -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/samaylungsoundmodels/12"
    assert model_name("samay-lung-sound", arn) == "samay-lung-sound-v12"
    assert endpoint_config_name("samay-lung-sound-v12", "ml.c5.xlarge", 2) == "samay-lung-sound-v12-c5-xlarge-x2"
    long_endpoint = "e" * 60
    long_name = model_name(long_endpoint, arn)
    assert len(long_name) == 63 and long_name != model_name(long_endpoint, arn.replace("/12", "/13"))
    unversioned = model_name("samay-lung-sound", "arn:aws:sagemaker:us-east-1:123456789012:model-package/solo")
    assert unversioned.startswith("samay-lung-sound-") and len(unversioned) == len("samay-lung-sound-") + 12


HANDLER = '''
import json


def input_handler(data, context):
    return json.dumps({"instances": [[1.0, 2.0]]})


def output_handler(response, context):
    return json.dumps({"predictions": json.loads(response.content)["predictions"], "tag": "TAG"}), "application/json"
'''


@pytest.fixture
def local_sagemaker(aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The local cloud's SageMaker service (it implements UpdateEndpoint and runs endpoints) beside moto."""
    from tests.local.conftest import start_sagemaker_service

    with start_sagemaker_service(tmp_path / "sagemaker") as service:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", service.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", service.url)
        aws.client.cache_clear()
        yield service
    aws.client.cache_clear()


def register_artifact(savedmodel: Path, tag: str) -> str:
    """An Approved package whose artifact answers with `tag` (so a test can tell versions apart)."""
    body = model_tarball(savedmodel, HANDLER.replace("TAG", tag))
    s3 = aws.client("s3")
    if "samay-test" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="samay-test")
    s3.put_object(Bucket="samay-test", Key=f"{tag}/model.tar.gz", Body=body)
    sm = aws.client("sagemaker")
    if not sm.list_model_package_groups()["ModelPackageGroupSummaryList"]:
        sm.create_model_package_group(ModelPackageGroupName=MODEL_PACKAGE_GROUP)
    return sm.create_model_package(
        ModelPackageGroupName=MODEL_PACKAGE_GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "tensorflow-inference", "ModelDataUrl": f"s3://samay-test/{tag}/model.tar.gz"}],
            "SupportedContentTypes": ["audio/wav"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]


def settled(endpoint_name: str) -> dict[str, Any]:
    """The endpoint once it is no longer Creating/Updating (the bound only guards a hung host)."""
    sm = aws.client("sagemaker")
    deadline = time.monotonic() + 300
    while True:
        described = sm.describe_endpoint(EndpointName=endpoint_name)
        if described["EndpointStatus"] not in ("Creating", "Updating") or time.monotonic() > deadline:
            return described
        time.sleep(0.5)


def tag_served(endpoint_name: str) -> str:
    runtime = aws.client("sagemaker-runtime")
    body = runtime.invoke_endpoint(EndpointName=endpoint_name, Body=b"RIFF", ContentType="audio/wav")["Body"].read()
    return json.loads(body)["tag"]


def test_new_package_updates_the_running_endpoint_in_place(local_sagemaker, savedmodel: Path) -> None:
    # GIVEN the endpoint serves version 1 (running on the local SageMaker's endpoint host)
    first = register_artifact(savedmodel, "A")
    created = app.lambda_handler(load_event("deploy_request", model_package_arn=first), LambdaContext())
    assert created["action"] == "created"
    assert settled(ENDPOINT_NAME)["EndpointStatus"] == "InService"
    assert tag_served(ENDPOINT_NAME) == "A"
    # WHEN version 2 is registered and deployed
    second = register_artifact(savedmodel, "B")
    updated = app.lambda_handler(load_event("deploy_request", model_package_arn=second), LambdaContext())
    # THEN the same endpoint moves to a new config for the new model, and a replay changes nothing
    assert updated == {
        "endpoint_name": ENDPOINT_NAME,
        "endpoint_config_name": "samay-lung-sound-v2-m5-large-x1",
        "model_name": "samay-lung-sound-v2",
        "action": "updated",
    }
    endpoint = settled(ENDPOINT_NAME)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", updated["endpoint_config_name"])
    assert tag_served(ENDPOINT_NAME) == "B"
    replay = app.lambda_handler(load_event("deploy_request", model_package_arn=second), LambdaContext())
    assert replay == {**updated, "action": "unchanged"}
