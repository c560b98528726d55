"""Pipeline executions: start (parameters, ClientRequestToken), describe, list, stop, steps."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import ROLE_ARN, definition, fail_step, steps_by_name, wait_for_execution

PARAMETERS = [
    {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.7},
    {"Name": "Count", "Type": "Integer", "DefaultValue": 1},
    {"Name": "Label", "Type": "String", "DefaultValue": "default"},
    {"Name": "Flag", "Type": "Boolean", "DefaultValue": False},
]
JOINED = {"Std:Join": {"On": "|", "Values": [{"Get": "Parameters.Threshold"}, {"Get": "Parameters.Count"},
                                             {"Get": "Parameters.Label"}, {"Get": "Parameters.Flag"}]}}
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def pipeline(sagemaker):
    sagemaker.create_pipeline(PipelineName="Params", RoleArn=ROLE_ARN,
                              PipelineDefinition=definition(fail_step("Report", JOINED), parameters=PARAMETERS))
    return "Params"


def test_start_pipeline_execution_uses_defaults(sagemaker, pipeline):
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]

    described = wait_for_execution(sagemaker, arn)
    assert arn.startswith("arn:aws:sagemaker:us-east-1:123456789012:pipeline/params/execution/")
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "0.7|1|default|false"


def test_start_pipeline_execution_overrides_are_typed(sagemaker, pipeline):
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline, PipelineParameters=[
        {"Name": "Threshold", "Value": "0.95"}, {"Name": "Count", "Value": "3"}, {"Name": "Flag", "Value": "True"},
    ])["PipelineExecutionArn"]

    assert wait_for_execution(sagemaker, arn)["FailureReason"] == "0.95|3|default|true"
    listed = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in listed} == {"Threshold": "0.95", "Count": "3", "Label": "default",
                                                       "Flag": "true"}


@pytest.mark.parametrize(
    ("override", "fragment"),
    [({"Name": "Count", "Value": "many"}, "'Count' is of type Integer"),
     ({"Name": "Ghost", "Value": "1"}, "'Ghost' is not defined")],
)
def test_start_pipeline_execution_bad_parameter_is_validation_exception(sagemaker, pipeline, override, fragment):
    with pytest.raises(ClientError) as err:
        sagemaker.start_pipeline_execution(PipelineName=pipeline, PipelineParameters=[override])

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert fragment in err.value.response["Error"]["Message"]
    assert sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"] == []


def test_start_pipeline_execution_same_client_request_token_returns_same_execution(sagemaker, pipeline):
    first = sagemaker.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=TOKEN)
    second = sagemaker.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=TOKEN)

    assert first["PipelineExecutionArn"] == second["PipelineExecutionArn"]
    assert len(sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]) == 1


def test_start_pipeline_execution_unknown_pipeline_is_resource_not_found(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.start_pipeline_execution(PipelineName="Nope")

    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_describe_pipeline_execution_unknown_is_resource_not_found(sagemaker, pipeline):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/params/execution/nothere"

    with pytest.raises(ClientError) as err:
        sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)

    assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    assert arn in err.value.response["Error"]["Message"]


def test_list_pipeline_executions_newest_first_with_failure_reason(sagemaker, pipeline):
    arns = [sagemaker.start_pipeline_execution(PipelineName=pipeline, PipelineExecutionDisplayName=f"run-{i}")[
        "PipelineExecutionArn"] for i in range(2)]
    for arn in arns:
        wait_for_execution(sagemaker, arn)

    summaries = sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]

    assert [s["PipelineExecutionArn"] for s in summaries] == arns[::-1]
    assert [s["PipelineExecutionDisplayName"] for s in summaries] == ["run-1", "run-0"]
    assert summaries[0]["PipelineExecutionFailureReason"] == "0.7|1|default|false"


def test_list_pipeline_execution_steps_newest_first_with_metadata(sagemaker):
    steps = [
        {"Name": "First", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [], "ElseSteps": []}},
        {**fail_step("Second", "done"), "DependsOn": ["First"]},
    ]
    sagemaker.create_pipeline(PipelineName="Two", RoleArn=ROLE_ARN, PipelineDefinition=definition(*steps))
    arn = sagemaker.start_pipeline_execution(PipelineName="Two")["PipelineExecutionArn"]
    wait_for_execution(sagemaker, arn)

    listed = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]

    assert [step["StepName"] for step in listed] == ["Second", "First"]
    assert listed[1]["StepStatus"] == "Succeeded"
    assert listed[1]["Metadata"] == {"Condition": {"Outcome": "True"}}
    assert listed[0]["StepStatus"] == "Failed"
    assert listed[0]["Metadata"] == {"Fail": {"ErrorMessage": "done"}}
    assert listed[0]["FailureReason"] == "done"


def test_describe_pipeline_definition_for_execution_keeps_the_started_definition(sagemaker, pipeline):
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    wait_for_execution(sagemaker, arn)

    sagemaker.update_pipeline(PipelineName=pipeline, PipelineDefinition=definition(fail_step("Other", "x")))

    started = json.loads(sagemaker.describe_pipeline_definition_for_execution(PipelineExecutionArn=arn)["PipelineDefinition"])
    assert [step["Name"] for step in started["Steps"]] == ["Report"]


def test_stop_pipeline_execution_finished_is_validation_exception(sagemaker, pipeline):
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    wait_for_execution(sagemaker, arn)

    with pytest.raises(ClientError) as err:
        sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=TOKEN)

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Failed" in err.value.response["Error"]["Message"]


def test_unsupported_step_type_fails_the_execution_with_a_clear_reason(sagemaker):
    transform = {"Name": "Score", "Type": "Transform", "Arguments": {}}
    sagemaker.create_pipeline(PipelineName="Tx", RoleArn=ROLE_ARN, PipelineDefinition=definition(transform))

    arn = sagemaker.start_pipeline_execution(PipelineName="Tx")["PipelineExecutionArn"]

    described = wait_for_execution(sagemaker, arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert "step type 'Transform' is not supported" in described["FailureReason"]
    assert steps_by_name(sagemaker, arn)["Score"]["StepStatus"] == "Failed"


def test_aws_cli_lists_executions_and_steps(sagemaker, sagemaker_service, pipeline):
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    wait_for_execution(sagemaker, arn)
    aws_cli = [str(Path(sys.executable).with_name("aws")), "--endpoint-url", sagemaker_service.url, "--output", "json",
               "sagemaker"]

    executions = subprocess.run([*aws_cli, "list-pipeline-executions", "--pipeline-name", pipeline],
                                capture_output=True, text=True, check=True)
    steps = subprocess.run([*aws_cli, "list-pipeline-execution-steps", "--pipeline-execution-arn", arn],
                           capture_output=True, text=True, check=True)

    assert [e["PipelineExecutionArn"] for e in json.loads(executions.stdout)["PipelineExecutionSummaries"]] == [arn]
    assert [s["StepName"] for s in json.loads(steps.stdout)["PipelineExecutionSteps"]] == ["Report"]
