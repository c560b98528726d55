"""Models, endpoint configs, endpoints and the runtime: a tiny artifact served through its handler,
updated to a second artifact without dropping a request."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import ENDPOINT_BUCKET as BUCKET
from tests.local.conftest import ROLE_ARN, endpoint_config, wait_for_endpoint


def _invoke(runtime: Any, name: str, body: bytes = b"1,2", content_type: str = "text/csv") -> dict[str, Any]:
    return json.loads(runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type)["Body"].read())


def test_create_model_from_model_package_resolves_its_artifact(sagemaker):
    sagemaker.create_model_package_group(ModelPackageGroupName="G")
    package = sagemaker.create_model_package(ModelPackageGroupName="G", InferenceSpecification={
        "Containers": [{"Image": "local/tfs", "ModelDataUrl": "s3://b/m/model.tar.gz"}],
        "SupportedContentTypes": ["audio/wav"], "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]

    sagemaker.create_model(ModelName="from-package", ExecutionRoleArn=ROLE_ARN,
                           Containers=[{"ModelPackageName": package}])

    container = sagemaker.describe_model(ModelName="from-package")["Containers"][0]
    assert container["ModelPackageName"] == package
    assert container["ModelDataUrl"] == "s3://b/m/model.tar.gz"


def test_create_model_duplicate_is_validation_exception(sagemaker):
    sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "i"})

    with pytest.raises(ClientError) as err:
        sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "i"})

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "already existing model" in err.value.response["Error"]["Message"]


def test_describe_model_unknown_is_validation_exception(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.describe_model(ModelName="ghost")

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find model" in err.value.response["Error"]["Message"]


def test_delete_model_then_describe_is_validation_exception(sagemaker):
    sagemaker.create_model(ModelName="gone", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "i"})
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["gone"]

    sagemaker.delete_model(ModelName="gone")

    with pytest.raises(ClientError) as err:
        sagemaker.describe_model(ModelName="gone")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_create_endpoint_config_then_describe_then_delete(sagemaker):
    name = endpoint_config(sagemaker, "cfg", "s3://b/m.tar.gz")

    described = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    sagemaker.delete_endpoint_config(EndpointConfigName=name)

    assert described["EndpointConfigArn"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/config-cfg"
    assert described["ProductionVariants"][0]["ModelName"] == "model-cfg"
    with pytest.raises(ClientError) as err:
        sagemaker.describe_endpoint_config(EndpointConfigName=name)
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_create_endpoint_config_unknown_model_is_validation_exception(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "ghost", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "ghost" in err.value.response["Error"]["Message"]


def test_create_endpoint_unknown_config_is_validation_exception(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="ghost")

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find endpoint configuration" in err.value.response["Error"]["Message"]


def test_create_endpoint_missing_artifact_ends_failed_with_reason(sagemaker, s3):
    s3.create_bucket(Bucket=BUCKET)
    sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName=endpoint_config(sagemaker, "broken", f"s3://{BUCKET}/absent.tar.gz"))

    described = wait_for_endpoint(sagemaker, "broken")

    assert described["EndpointStatus"] == "Failed"
    assert f"s3://{BUCKET}/absent.tar.gz" in described["FailureReason"]


def test_endpoint_lifecycle_serves_updates_without_dropping_requests_then_deletes(sagemaker, sagemaker_service, artifacts):
    runtime = sagemaker_service.client("sagemaker-runtime")
    arn = sagemaker.create_endpoint(EndpointName="lungs", EndpointConfigName=endpoint_config(sagemaker, "a", artifacts["A"]))["EndpointArn"]
    assert sagemaker.describe_endpoint(EndpointName="lungs")["EndpointStatus"] == "Creating"

    described = wait_for_endpoint(sagemaker, "lungs")

    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert described["EndpointArn"] == arn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/lungs"
    assert described["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    assert _invoke(runtime, "lungs") == {"tag": "A", "predictions": [[2.0, 4.0]]}

    answers: list[str] = []
    failures: list[Exception] = []
    stop = threading.Event()

    def keep_invoking() -> None:
        while not stop.is_set():
            try:
                answers.append(_invoke(runtime, "lungs")["tag"])
            except Exception as err:  # collected: the assertion below shows any dropped request
                failures.append(err)

    invoker = threading.Thread(target=keep_invoking)
    invoker.start()
    sagemaker.update_endpoint(EndpointName="lungs", EndpointConfigName=endpoint_config(sagemaker, "b", artifacts["B"]))
    updating = sagemaker.describe_endpoint(EndpointName="lungs")
    assert (updating["EndpointStatus"], updating["EndpointConfigName"]) == ("Updating", "config-a")
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == "config-b"
    updated = wait_for_endpoint(sagemaker, "lungs")
    stop.set()
    invoker.join()

    assert updated["EndpointStatus"] == "InService", updated.get("FailureReason")
    assert updated["EndpointConfigName"] == "config-b"
    assert "PendingDeploymentSummary" not in updated
    assert failures == []
    assert answers and set(answers) <= {"A", "B"}
    assert _invoke(runtime, "lungs")["tag"] == "B"

    with pytest.raises(ClientError) as err:  # the handler rejects the input: the model's 400 as a ModelError
        runtime.invoke_endpoint(EndpointName="lungs", Body=b"RIFF....", ContentType="audio/wav")
    error = err.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 400
    assert "audio/wav is not text/csv" in error["OriginalMessage"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424

    sagemaker.delete_endpoint(EndpointName="lungs")

    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName="lungs", Body=b"1,2", ContentType="text/csv")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_update_endpoint_not_in_service_is_validation_exception(sagemaker, s3):
    s3.create_bucket(Bucket=BUCKET)
    sagemaker.create_endpoint(EndpointName="busy", EndpointConfigName=endpoint_config(sagemaker, "busy", f"s3://{BUCKET}/absent.tar.gz"))

    with pytest.raises(ClientError) as err:
        sagemaker.update_endpoint(EndpointName="busy", EndpointConfigName="config-busy")

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Cannot update in-progress endpoint" in err.value.response["Error"]["Message"]
    wait_for_endpoint(sagemaker, "busy")
