"""The template deploys into moto's CloudFormation and creates what it promises.

moto creates the resource types it supports (S3, Kinesis, DynamoDB, EventBridge, Lambda, IAM, SQS,
SNS, KMS, logs) and skips the others (Pipes, Glue, QuickSight, API Gateway v2, SageMaker groups).
Some properties moto's CloudFormation does not apply (bucket versioning, lifecycle and public
access block, stream encryption, PITR, Lambda dead-letter config); test_template_settings.py checks those on the template itself.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest

from lambdas.shared import aws
from tests.infra.conftest import TEMPLATE

BUCKET = "samay-stack-test"
FUNCTIONS = ("samay-trigger", "samay-inference", "samay-deploy", "samay-predict-api")


@pytest.fixture
def stack(aws_endpoint: str) -> dict[str, Any]:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="samay-code")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("lambdas/__init__.py", "")
    s3.put_object(Bucket="samay-code", Key="lambdas.zip", Body=archive.getvalue())
    cfn = aws.client("cloudformation")
    cfn.create_stack(
        StackName="samay",
        TemplateBody=TEMPLATE.read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": "LambdaCodeBucket", "ParameterValue": "samay-code"},
            {"ParameterKey": "LambdaCodeKey", "ParameterValue": "lambdas.zip"},
            {"ParameterKey": "DataBucketName", "ParameterValue": BUCKET},
        ],
    )
    return cfn.describe_stacks(StackName="samay")["Stacks"][0]


def test_stack_creates_completely(stack: dict[str, Any]) -> None:
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_bucket_is_encrypted_with_the_customer_key(stack: dict[str, Any]) -> None:
    s3 = aws.client("s3")
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_stream_is_active(stack: dict[str, Any]) -> None:
    description = aws.client("kinesis").describe_stream(StreamName="samay-ingest")["StreamDescription"]
    assert description["StreamStatus"] == "ACTIVE"


def test_predictions_table_has_patient_index(stack: dict[str, Any]) -> None:
    dynamodb = aws.client("dynamodb")
    table = dynamodb.describe_table(TableName="samay-predictions")["Table"]
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        ("recording_id", "HASH"),
        ("model_version", "RANGE"),
    ]
    index = table["GlobalSecondaryIndexes"][0]
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["patient_id", "created_at"]
    for name in ("samay-idempotency", "samay-ingest-state"):
        assert dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"


def test_rule_routes_pipe_events_to_the_trigger(stack: dict[str, Any]) -> None:
    events = aws.client("events")
    rule = events.describe_rule(Name="recording-ingested", EventBusName="samay")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["Pipe samay-ingest-pipe"],
        "detail-type": ["Event from aws:kinesis"],
    }
    targets = events.list_targets_by_rule(Rule="recording-ingested", EventBusName="samay")["Targets"]
    assert [t["Arn"].rsplit(":", 1)[-1] for t in targets] == ["samay-trigger"]
    assert targets[0]["DeadLetterConfig"]["Arn"].endswith(":samay-trigger-dlq")


def test_functions_have_reserved_concurrency_and_settings(stack: dict[str, Any]) -> None:
    lambda_client = aws.client("lambda")
    for name in FUNCTIONS:
        config = lambda_client.get_function(FunctionName=name)["Configuration"]
        assert config["Runtime"] == "python3.11"
        assert config["Handler"].startswith("lambdas/")
        assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] >= 1
    inference_env = lambda_client.get_function(FunctionName="samay-inference")["Configuration"]["Environment"]
    assert inference_env["Variables"]["SAMAY_BUCKET"] == BUCKET
    assert inference_env["Variables"]["SAMAY_PREDICTIONS_TABLE"] == "samay-predictions"
