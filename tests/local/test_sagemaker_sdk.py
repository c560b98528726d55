"""The SageMaker Python SDK works unchanged against the local service (AWS_ENDPOINT_URL_SAGEMAKER)."""
from __future__ import annotations

import json
import os

import pytest

from tests.local.conftest import ROLE_ARN

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


@pytest.fixture
def session(sagemaker):
    from sagemaker.session import Session

    import boto3

    return Session(boto_session=boto3.session.Session(region_name="us-east-1"), default_bucket="sdk-tests")


def _gate_pipeline(session, name: str):
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.parameters import ParameterFloat
    from sagemaker.workflow.pipeline import Pipeline

    accuracy = ParameterFloat(name="Accuracy", default_value=0.5)
    threshold = ParameterFloat(name="AccuracyThreshold", default_value=0.7)
    fail = FailStep(name="Fail", error_message=Join(on=" ", values=["accuracy", accuracy, "is below", threshold]))
    check = ConditionStep(name="CheckAccuracy", conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=threshold)],
                          if_steps=[], else_steps=[fail])
    return Pipeline(name=name, parameters=[accuracy, threshold], steps=[check], sagemaker_session=session)


def test_pipeline_upsert_twice_creates_then_updates(session, sagemaker):
    pipeline = _gate_pipeline(session, "SdkGate")

    created = pipeline.upsert(role_arn=ROLE_ARN, description="first")
    updated = pipeline.upsert(role_arn=ROLE_ARN, description="second", tags=[{"Key": "k", "Value": "v"}])

    assert created["PipelineArn"] == updated["PipelineArn"]
    described = pipeline.describe()
    assert described["PipelineDescription"] == "second"
    assert {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=created["PipelineArn"])["Tags"]} == {"k": "v"}


def test_pipeline_start_wait_list_steps_when_gate_passes(session):
    pipeline = _gate_pipeline(session, "SdkGate")
    pipeline.upsert(role_arn=ROLE_ARN)

    execution = pipeline.start(parameters={"Accuracy": 0.9})
    execution.wait(delay=1, max_attempts=120)

    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    steps = execution.list_steps()
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [("CheckAccuracy", "Succeeded")]
    assert steps[0]["Metadata"]["Condition"]["Outcome"] == "True"
    parameters = {p["Name"]: p["Value"] for p in execution.list_parameters()["PipelineParameters"]}
    assert parameters == {"Accuracy": "0.9", "AccuracyThreshold": "0.7"}


def test_pipeline_start_wait_raises_when_gate_fails(session):
    from botocore.exceptions import WaiterError

    pipeline = _gate_pipeline(session, "SdkGate")
    pipeline.upsert(role_arn=ROLE_ARN)

    execution = pipeline.start()
    with pytest.raises(WaiterError):
        execution.wait(delay=1, max_attempts=120)

    described = execution.describe()
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "accuracy 0.5 is below 0.7"
    assert [s["StepName"] for s in execution.list_steps()] == ["Fail", "CheckAccuracy"]
    assert [e["PipelineExecutionArn"] for e in pipeline.list_executions()["PipelineExecutionSummaries"]] == [execution.arn]


def test_project_pipeline_definition_upserts_with_every_step(session, sagemaker, s3):
    from pipelines.pipeline import get_pipeline

    s3.create_bucket(Bucket="samay-sdk")
    pipeline = get_pipeline("us-east-1", role=ROLE_ARN, default_bucket="samay-sdk")

    pipeline.upsert(role_arn=ROLE_ARN)

    described = sagemaker.describe_pipeline(PipelineName=pipeline.name)
    steps = json.loads(described["PipelineDefinition"])["Steps"]
    branches = [step for s in steps for key in ("IfSteps", "ElseSteps") for step in s.get("Arguments", {}).get(key, [])]
    assert [s["Name"] for s in steps + branches] == ["Preprocess", "Train", "Evaluate", "CheckAccuracy",
                                                      "RegisterModel", "Deploy", "Fail"]
