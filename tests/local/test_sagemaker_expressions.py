"""The expression evaluator and definition graph in-process: Get, Std:Join, Std:JsonGet, conditions,
property paths, ExpireAfter durations, and the walk order of DependsOn plus data dependencies."""
from __future__ import annotations

import json

import pytest

from infra.local.sagemaker.definition import parse_definition
from infra.local.sagemaker.executor import expire_after_seconds
from infra.local.sagemaker.expressions import EvaluationError, Evaluator, Scope, walk
from tests.local.conftest import definition, fail_step

PROPERTIES = {
    "Preprocess": {"ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
        {"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/eval/"}}]}},
    "Train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"}},
    "Deploy": {"OutputParameters": {"endpoint": "samay-lung-sound"}},
}


@pytest.fixture
def evaluator() -> Evaluator:
    files = {"s3://b/eval/evaluation.json": json.dumps({"metrics": {"accuracy": {"value": 0.81}, "classes": ["a", "b"]}})}

    def read_text(uri: str) -> str:
        if uri not in files:
            raise EvaluationError(f"cannot read {uri}")
        return files[uri]

    return Evaluator(Scope(
        parameters={"Threshold": 0.7, "Count": 2, "Name": "lungs", "Flag": True},
        execution={"PipelineExecutionId": "abc123"},
        properties=PROPERTIES,
        property_files={"Preprocess": {"Report": {"PropertyFileName": "Report", "OutputName": "evaluation",
                                                  "FilePath": "evaluation.json"}}},
        read_text=read_text,
    ))


def _json_get(path: str) -> dict:
    return {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.Report"}, "Path": path}}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ({"Get": "Parameters.Threshold"}, 0.7),
        ({"Get": "Execution.PipelineExecutionId"}, "abc123"),
        ({"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}, "s3://b/train"),
        ({"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs[1].OutputName"}, "evaluation"),
        ({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, "s3://b/model.tar.gz"),
        ({"Get": "Steps.Deploy.OutputParameters['endpoint']"}, "samay-lung-sound"),
        ({"Std:Join": {"On": "/", "Values": ["s3:/", {"Get": "Parameters.Name"}, {"Get": "Parameters.Count"},
                                              {"Get": "Parameters.Flag"}]}}, "s3://lungs/2/true"),
        (_json_get("metrics.accuracy.value"), 0.81),
        (_json_get("$.metrics.classes[1]"), "b"),
        ({"Nested": [{"Get": "Parameters.Count"}]}, {"Nested": [2]}),
    ],
)
def test_resolve_expression_gives_value(evaluator, expression, value):
    assert evaluator.resolve(expression) == value


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ({"Get": "Steps.Evaluate.Outcome"}, "step 'Evaluate' has not run"),
        ({"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}, "no 'test'"),
        (_json_get("metrics.f1.value"), "'metrics.f1.value' does not exist"),
        ({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.Other"}, "Path": "x"}},
         "declares no property file 'Other'"),
    ],
)
def test_resolve_expression_missing_value_is_evaluation_error(evaluator, expression, fragment):
    with pytest.raises(EvaluationError, match=fragment):
        evaluator.resolve(expression)


@pytest.mark.parametrize(
    ("condition", "outcome"),
    [
        ({"Type": "GreaterThanOrEqualTo", "LeftValue": _json_get("metrics.accuracy.value"),
          "RightValue": {"Get": "Parameters.Threshold"}}, True),
        ({"Type": "GreaterThan", "LeftValue": 0.7, "RightValue": {"Get": "Parameters.Threshold"}}, False),
        ({"Type": "LessThan", "LeftValue": "0.5", "RightValue": {"Get": "Parameters.Threshold"}}, True),
        ({"Type": "LessThanOrEqualTo", "LeftValue": 3, "RightValue": {"Get": "Parameters.Count"}}, False),
        ({"Type": "Equals", "LeftValue": {"Get": "Parameters.Name"}, "RightValue": "lungs"}, True),
        ({"Type": "In", "QueryValue": {"Get": "Parameters.Count"}, "Values": [1, "2"]}, True),
        ({"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": 1, "RightValue": 1}}, False),
        ({"Type": "Or", "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 2},
                                       {"Type": "Equals", "LeftValue": 2, "RightValue": 2}]}, True),
    ],
)
def test_condition_evaluates(evaluator, condition, outcome):
    assert evaluator.condition(condition) is outcome


def test_condition_unknown_type_is_evaluation_error(evaluator):
    with pytest.raises(EvaluationError, match="'Between' is not supported"):
        evaluator.condition({"Type": "Between"})


def test_walk_double_quoted_key_and_index():
    assert walk({"a": [{"b": {"c d": 1}}]}, 'a[0].b["c d"]', what="doc") == 1


@pytest.mark.parametrize(("duration", "seconds"), [("P30d", 30 * 86400), ("PT1H", 3600), ("30dT5h", 30 * 86400 + 5 * 3600),
                                                   ("T16m", 960), ("P1Y", 365 * 86400), (None, float("inf"))])
def test_expire_after_seconds_parses_iso_durations(duration, seconds):
    assert expire_after_seconds(duration) == seconds


def test_expire_after_seconds_bad_duration_is_evaluation_error():
    with pytest.raises(EvaluationError, match="'soon' is not an ISO-8601 duration"):
        expire_after_seconds("soon")


def test_definition_order_follows_data_dependencies_and_branches():
    train = {"Name": "Train", "Type": "Training", "Arguments": {"In": {"Get": "Steps.Prep.Outcome"}}}
    condition = {"Name": "Check", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.Train.X"}, "RightValue": 1}],
        "IfSteps": [{"Name": "Register", "Type": "RegisterModel", "Arguments": {}}],
        "ElseSteps": [fail_step("Stop", "no")]}}
    parsed = parse_definition(definition(condition, train, {"Name": "Prep", "Type": "Processing", "Arguments": {}},
                                         {**fail_step("Late", "x"), "DependsOn": ["Register"]}))

    assert [step.name for step in parsed.order()] == ["Prep", "Train", "Check", "Register", "Stop", "Late"]
    assert (parsed.steps["Register"].condition, parsed.steps["Register"].branch) == ("Check", True)
    assert (parsed.steps["Stop"].condition, parsed.steps["Stop"].branch) == ("Check", False)
