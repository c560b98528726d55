"""The deploy Lambda against moto's SageMaker: create, repeat, refuse; update in place (see xfail)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdas.deploy import app
from lambdas.deploy.endpoint import endpoint_config_name, model_name
from lambdas.deploy.errors import InvalidDeployRequest, ModelPackageNotApproved, ModelPackageNotFound
from lambdas.shared import aws
from lambdas.shared.config import ENDPOINT_NAME, MODEL_PACKAGE_GROUP

EVENTS = Path(__file__).resolve().parents[1] / "events"


@dataclass
class LambdaContext:
    function_name: str = "samay-deploy"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:samay-deploy"
    aws_request_id: str = "a3c1e0de-0000-4000-8000-000000000001"


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


@pytest.mark.xfail(
    raises=ClientError,
    strict=True,
    reason="moto 5.2 implements no UpdateEndpoint (its server answers HTTP 500); "
    "runs for real against the local cloud's SageMaker",
)
def test_deploy_of_new_package_updates_endpoint_in_place(aws_endpoint: str) -> None:
    # GIVEN the endpoint serves version 1 and version 2 is registered and Approved
    register_package()
    app.lambda_handler(load_event("deploy_request"), LambdaContext())
    second = register_package()
    # WHEN version 2 is deployed
    result = app.lambda_handler(load_event("deploy_request", model_package_arn=second), LambdaContext())
    # THEN the same endpoint now runs a new config for the new model
    assert result["action"] == "updated"
    assert result["model_name"] == "samay-lung-sound-v2"
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT_NAME)
    assert result["endpoint_config_name"] in (
        endpoint["EndpointConfigName"], endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName"),
    )


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
