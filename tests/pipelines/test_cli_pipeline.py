"""`samay pipeline definition|upsert|run|status` against moto's server."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lambdas.shared import aws
from pipelines.cli import app

BUCKET = "samay-test"
ROLE = "arn:aws:iam::123456789012:role/samay-sagemaker-execution"


@pytest.fixture
def cli_env(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("SAMAY_BUCKET", BUCKET)
    return {"SAMAY_BUCKET": BUCKET}


def invoke(*args: str):
    return CliRunner().invoke(app, ["pipeline", *args])


def test_definition_prints_the_json_with_the_callers_role(cli_env) -> None:
    result = invoke("definition")
    assert result.exit_code == 0, result.output
    definition = json.loads(result.stdout)
    assert [step["Name"] for step in definition["Steps"]] == ["Preprocess", "Train", "Evaluate", "CheckAccuracy"]
    # no --role: the project's execution role in the account of the credentials (moto's 123456789012)
    assert definition["Steps"][0]["Arguments"]["RoleArn"] == ROLE


def test_upsert_then_run_with_parameters(cli_env) -> None:
    # GIVEN the pipeline upserted from this checkout
    upserted = invoke("upsert", "--role", ROLE)
    assert upserted.exit_code == 0, upserted.output
    assert "PredictionsSamayPipeline" in upserted.output
    # WHEN a run overrides two parameters
    started = invoke("run", "--param", "Epochs=3", "-p", "AccuracyThreshold=0.5")
    # THEN one execution started with exactly those values
    assert started.exit_code == 0, started.output
    sm = aws.client("sagemaker")
    [summary] = sm.list_pipeline_executions(PipelineName="PredictionsSamayPipeline")["PipelineExecutionSummaries"]
    assert summary["PipelineExecutionArn"] in started.output.replace("\n", "")
    parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=summary["PipelineExecutionArn"])
    assert {p["Name"]: p["Value"] for p in parameters["PipelineParameters"]} == {"Epochs": "3", "AccuracyThreshold": "0.5"}


def test_run_refuses_unknown_parameter_and_lists_the_known_ones(cli_env) -> None:
    assert invoke("upsert", "--role", ROLE).exit_code == 0
    result = invoke("run", "--param", "Epoch=3")
    assert result.exit_code == 1
    assert "unknown parameter(s) Epoch" in result.output and "Epochs" in result.output
    assert aws.client("sagemaker").list_pipeline_executions(PipelineName="PredictionsSamayPipeline")[
        "PipelineExecutionSummaries"
    ] == []


def test_run_refuses_a_malformed_pair(cli_env) -> None:
    result = invoke("run", "--param", "Epochs")
    assert result.exit_code == 1
    assert "--param expects Name=Value, got 'Epochs'" in result.output


def test_run_of_a_pipeline_never_upserted_says_so(cli_env) -> None:
    result = invoke("run")
    assert result.exit_code == 1
    assert "pipeline PredictionsSamayPipeline does not exist in SageMaker yet" in result.output
    assert "samay pipeline upsert" in result.output


def test_status_without_executions(cli_env) -> None:
    assert invoke("upsert", "--role", ROLE).exit_code == 0
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert "has no executions yet" in result.output


@pytest.fixture
def local_sagemaker(cli_env, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """The local cloud's SageMaker service beside moto: it runs executions (moto only records them)."""
    from tests.local.conftest import start_sagemaker_service

    with start_sagemaker_service(tmp_path / "sagemaker") as service:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", service.url)
        aws.client.cache_clear()
        yield aws.client("sagemaker")
    aws.client.cache_clear()


def create_pipeline(sm, name: str, steps: list[dict]) -> None:
    definition = {"Version": "2020-12-01", "Metadata": {}, "Parameters": [], "Steps": steps}
    sm.create_pipeline(PipelineName=name, PipelineDefinition=json.dumps(definition), RoleArn=ROLE)


def test_run_wait_exits_non_zero_with_the_fail_steps_message(local_sagemaker) -> None:
    # GIVEN a pipeline whose only step is a Fail step
    create_pipeline(local_sagemaker, "Gate", [{"Name": "Fail", "Type": "Fail", "Arguments": {"ErrorMessage": "accuracy 0.41 < 0.7"}}])
    # WHEN it runs with --wait
    result = invoke("run", "--name", "Gate", "--wait", "--poll", "0.2")
    # THEN the command fails and prints the execution's and the step's reason
    assert result.exit_code == 1
    assert "Failed" in result.output and "step Fail: accuracy 0.41 < 0.7" in result.output


def test_run_wait_succeeds_and_status_lists_the_steps(local_sagemaker) -> None:
    # GIVEN a pipeline of one condition whose branches are empty (it succeeds without jobs)
    create_pipeline(local_sagemaker, "Trivial", [
        {"Name": "Check", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 1, "RightValue": 0}], "IfSteps": [], "ElseSteps": []}},
    ])
    # WHEN it runs with --wait, then status is asked
    ran = invoke("run", "--name", "Trivial", "--wait", "--poll", "0.2")
    status = invoke("status", "--name", "Trivial")
    # THEN the run exits 0 and status shows the execution and its step
    assert ran.exit_code == 0, ran.output
    assert "Succeeded" in ran.output
    assert status.exit_code == 0, status.output
    assert "Succeeded" in status.output and "Check" in status.output


def test_the_local_sagemaker_accepts_the_upserted_definition(local_sagemaker) -> None:
    result = invoke("upsert", "--role", ROLE)
    assert result.exit_code == 0, result.output
    stored = json.loads(local_sagemaker.describe_pipeline(PipelineName="PredictionsSamayPipeline")["PipelineDefinition"])
    assert [step["Name"] for step in stored["Steps"]] == ["Preprocess", "Train", "Evaluate", "CheckAccuracy"]
