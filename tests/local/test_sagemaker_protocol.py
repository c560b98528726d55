"""The wire protocol of the local SageMaker service: dispatch and AWS-shaped errors, never a traceback."""
from __future__ import annotations

import json

import pytest
import requests
from botocore.exceptions import ClientError

from tests.local.conftest import Service

JSON_11 = "application/x-amz-json-1.1"


def _post(service: Service, target: str, body: bytes | str) -> requests.Response:
    return requests.post(service.url, data=body, timeout=10,
                         headers={"X-Amz-Target": target, "Content-Type": JSON_11})


def test_dispatch_list_pipelines_returns_json_11(sagemaker, sagemaker_service):
    answer = _post(sagemaker_service, "SageMaker.ListPipelines", "{}")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == JSON_11
    assert answer.json() == {"PipelineSummaries": []}


def test_dispatch_unknown_operation_is_unknown_operation_exception(sagemaker, sagemaker_service):
    answer = _post(sagemaker_service, "SageMaker.DescribeUnicorn", "{}")

    assert answer.status_code == 400
    assert answer.json()["__type"] == "UnknownOperationException"
    assert "DescribeUnicorn" in answer.json()["message"]


def test_dispatch_operation_not_implemented_locally_names_it(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.list_notebook_instances()

    assert err.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "does not implement ListNotebookInstances" in err.value.response["Error"]["Message"]


def test_dispatch_wrong_target_prefix_is_rejected(sagemaker, sagemaker_service):
    answer = _post(sagemaker_service, "DynamoDB_20120810.ListTables", "{}")

    assert answer.status_code == 400
    assert answer.json()["__type"] == "UnknownOperationException"


def test_dispatch_body_not_json_is_serialization_exception(sagemaker, sagemaker_service):
    answer = _post(sagemaker_service, "SageMaker.ListPipelines", "{not json")

    assert answer.status_code == 400
    assert answer.json()["__type"] == "SerializationException"


def test_dispatch_missing_required_field_is_validation_exception(sagemaker, sagemaker_service):
    answer = _post(sagemaker_service, "SageMaker.CreatePipeline", json.dumps({"PipelineName": "p"}))

    assert answer.status_code == 400
    body = answer.json()
    assert body["__type"] == "ValidationException"
    assert "roleArn" in body["message"] and "clientRequestToken" in body["message"]


def test_dispatch_unknown_route_is_an_aws_error_not_html(sagemaker, sagemaker_service):
    answer = requests.get(f"{sagemaker_service.url}/nope", timeout=10)

    assert answer.status_code == 400
    assert answer.json()["__type"] == "UnknownOperationException"


def test_invoke_endpoint_unknown_endpoint_is_validation_error(sagemaker, sagemaker_service):
    runtime = sagemaker_service.client("sagemaker-runtime")

    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName="ghost", Body=b"RIFF", ContentType="audio/wav")

    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert err.value.response["Error"]["Message"] == "Endpoint ghost of account 123456789012 not found."
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
