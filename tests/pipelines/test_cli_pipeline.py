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
    assert "DescribePipeline refused" in result.output


def test_status_without_executions(cli_env) -> None:
    assert invoke("upsert", "--role", ROLE).exit_code == 0
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert "has no executions yet" in result.output
