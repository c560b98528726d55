"""`samay deploy`: a reproducible Lambda package without TensorFlow, and a stack deployed into moto."""
from __future__ import annotations

import zipfile
import io

from typer.testing import CliRunner

from lambdas.shared import aws
from pipelines import deployer
from pipelines.cli import app


def test_lambda_package_holds_every_handler_and_no_ml_libraries() -> None:
    package = deployer.build_lambda_package(vendor=False)
    for function in ("trigger", "inference", "deploy"):
        assert f"lambdas/{function}/app.py" in package.files
    assert not [f for f in package.files if f.split("/")[0] in deployer.FORBIDDEN_IN_LAMBDA]
    assert not [f for f in package.files if "__pycache__" in f]
    names = zipfile.ZipFile(io.BytesIO(package.body)).namelist()
    assert names == list(package.files)


def test_lambda_package_is_reproducible() -> None:
    assert deployer.build_lambda_package(vendor=False).sha256 == deployer.build_lambda_package(vendor=False).sha256


def test_dry_run_prints_the_plan_without_an_account(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any AWS call would fail
    result = CliRunner().invoke(app, ["deploy", "--dry-run", "--no-vendor"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    for resource in ("IngestStream", "PredictionsTable", "TriggerFunction", "IngestPipe"):
        assert resource in result.output


def test_deploy_creates_the_stack_and_a_second_deploy_changes_nothing(aws_endpoint: str) -> None:
    args = ["deploy", "--stack", "samay", "--no-vendor", "--no-pipeline", "-p", "DataBucketName=samay-deployed"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "CREATE_COMPLETE" in first.output
    functions = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert {"samay-trigger", "samay-inference", "samay-deploy", "samay-predict-api"} <= functions
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    stacks = aws.client("cloudformation").describe_stacks(StackName="samay")["Stacks"]
    assert len(stacks) == 1


def test_bad_parameter_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["deploy", "--dry-run", "--no-vendor", "-p", "NoEquals"])
    assert result.exit_code == 1
    assert "Name=Value" in result.output
