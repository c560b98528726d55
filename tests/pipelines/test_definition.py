"""The pipeline definition JSON: DAG, parameters, the accuracy gate, registration, deployment, caching."""
from __future__ import annotations

import io
import json
import re
import tarfile
from typing import Any

import pytest
import requests

from lambdas.shared import aws
from steps.metrics import ACCURACY_JSON_PATH, BASELINE_JSON_PATH
from steps.model import TrainingConfig

BUCKET = "samay-test"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/samay-sagemaker-execution"


@pytest.fixture
def bucket(aws_endpoint: str) -> str:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def pipeline(bucket: str):
    from pipelines.pipeline import get_pipeline

    return get_pipeline(REGION, role=ROLE, default_bucket=bucket)


@pytest.fixture(scope="module")
def definition(moto_endpoint: str) -> dict[str, Any]:
    """One rendering shared by the read-only tests of a module (a build takes seconds)."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    aws.client.cache_clear()
    aws.client("s3").create_bucket(Bucket=BUCKET)
    from pipelines.pipeline import get_pipeline

    return json.loads(get_pipeline(REGION, role=ROLE, default_bucket=BUCKET).definition())


def steps_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step, the condition's branches included, by name."""
    found: dict[str, dict[str, Any]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        pending += step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", [])
    return found


EVALUATION = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}


def json_get(path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": EVALUATION, "Path": path}}


def test_parameters_are_declared_with_their_defaults(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert parameters == {
        "InputDataUrl": ("String", "s3://samay-test/datasets/latest/manifest.csv"),
        "InputAudioUrl": ("String", "s3://samay-test/raw/audio/"),
        "AccuracyThreshold": ("Float", 0.7),
        "ModelApprovalStatus": ("String", "Approved"),
        "ProcessingInstanceType": ("String", "ml.m5.xlarge"),
        "ProcessingInstanceCount": ("Integer", 1),
        "TrainingInstanceType": ("String", "ml.m5.xlarge"),
        "Epochs": ("Integer", TrainingConfig().epochs),
        "EnsembleSize": ("Integer", TrainingConfig().members),
        "EndpointInstanceType": ("String", "ml.m5.large"),
        "MinSubjectsPerClass": ("Integer", 2),
    }


def test_dag_runs_preprocess_train_evaluate_then_the_gate(definition: dict[str, Any]) -> None:
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("Preprocess", "Processing"),
        ("Train", "Training"),
        ("Evaluate", "Processing"),
        ("CheckAccuracy", "Condition"),
    ]
    steps = steps_by_name(definition)
    train_inputs = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in steps["Train"]["Arguments"]["InputDataConfig"]}
    assert train_inputs == {
        name: {"Get": f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"}
        for name in ("train", "validation")
    }
    evaluate_inputs = {i["InputName"]: i["S3Input"] for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"]}
    assert evaluate_inputs["model"]["S3Uri"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert evaluate_inputs["model"]["LocalPath"] == "/opt/ml/processing/model"
    assert evaluate_inputs["test"]["S3Uri"] == {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    assert evaluate_inputs["test"]["LocalPath"] == "/opt/ml/processing/test"
    assert steps["Evaluate"]["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


def test_preprocess_wiring_matches_the_script_contract(definition: dict[str, Any]) -> None:
    preprocess = steps_by_name(definition)["Preprocess"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in preprocess["ProcessingInputs"]}
    assert (inputs["manifest"]["S3Uri"], inputs["manifest"]["LocalPath"], inputs["manifest"]["S3DataDistributionType"]) == (
        {"Get": "Parameters.InputDataUrl"}, "/opt/ml/processing/input/manifest", "FullyReplicated",
    )
    assert (inputs["audio"]["S3Uri"], inputs["audio"]["LocalPath"], inputs["audio"]["S3DataDistributionType"]) == (
        {"Get": "Parameters.InputAudioUrl"}, "/opt/ml/processing/input/audio", "ShardedByS3Key",
    )
    outputs = {o["OutputName"]: o["S3Output"] for o in preprocess["ProcessingOutputConfig"]["Outputs"]}
    assert {name: out["LocalPath"] for name, out in outputs.items()} == {
        name: f"/opt/ml/processing/output/{name}" for name in ("train", "validation", "test", "report")
    }
    assert outputs["train"]["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": ["s3:/", "samay-test", "pipelines", {"Get": "Execution.PipelineExecutionId"}, "Preprocess", "train"]}
    }
    assert preprocess["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
    assert preprocess["AppSpecification"]["ContainerArguments"] == [
        "--manifest-dir", "/opt/ml/processing/input/manifest",
        "--audio-dir", "/opt/ml/processing/input/audio",
        "--output-dir", "/opt/ml/processing/output",
        "--resource-config", "/opt/ml/config/resourceconfig.json",
        "--min-subjects-per-class", {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.MinSubjectsPerClass"}]}},
    ]
    evaluate = steps_by_name(definition)["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert evaluate == [
        "--model-dir", "/opt/ml/processing/model", "--test-dir", "/opt/ml/processing/test",
        "--output-dir", "/opt/ml/processing/evaluation",
    ]


def test_training_runs_train_py_with_the_epochs_and_ensemble_parameters(definition: dict[str, Any]) -> None:
    train = steps_by_name(definition)["Train"]["Arguments"]
    hyperparameters = train["HyperParameters"]
    assert hyperparameters["epochs"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Epochs"}]}}
    assert hyperparameters["members"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.EnsembleSize"}]}}
    defaults = TrainingConfig()
    assert (hyperparameters["batch-size"], hyperparameters["learning-rate"], hyperparameters["seed"]) == (
        str(defaults.batch_size), str(defaults.learning_rate), str(defaults.seed),
    )
    assert hyperparameters["sagemaker_program"] == '"train.py"'
    assert "model_dir" not in hyperparameters
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert "tensorflow-training" in train["AlgorithmSpecification"]["TrainingImage"]


def test_gate_needs_threshold_and_beating_the_baseline(definition: dict[str, Any]) -> None:
    check = steps_by_name(definition)["CheckAccuracy"]["Arguments"]
    assert ACCURACY_JSON_PATH == "multiclass_classification_metrics.accuracy.value"
    assert check["Conditions"] == [
        {"Type": "GreaterThanOrEqualTo", "LeftValue": json_get(ACCURACY_JSON_PATH), "RightValue": {"Get": "Parameters.AccuracyThreshold"}},
        {"Type": "GreaterThan", "LeftValue": json_get(ACCURACY_JSON_PATH), "RightValue": json_get(BASELINE_JSON_PATH)},
    ]
    assert [(s["Name"], s["Type"]) for s in check["IfSteps"]] == [("RegisterModel", "RegisterModel"), ("Deploy", "Lambda")]
    assert [(s["Name"], s["Type"]) for s in check["ElseSteps"]] == [("Fail", "Fail")]


def test_register_attaches_the_evaluation_and_the_approval_parameter(definition: dict[str, Any]) -> None:
    register = steps_by_name(definition)["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == "SamayLungSoundModels"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert register["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": {"Std:Join": {"On": "/", "Values": [
            {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "evaluation.json",
        ]}},
    }
    spec = register["InferenceSpecification"]
    [container] = spec["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert "tensorflow-inference" in container["Image"]
    assert (spec["SupportedContentTypes"], spec["SupportedResponseMIMETypes"]) == (["audio/wav"], ["application/json"])


def test_deploy_invokes_the_deploy_function_with_the_registered_package(definition: dict[str, Any]) -> None:
    deploy = steps_by_name(definition)["Deploy"]
    assert deploy["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:samay-deploy"
    assert deploy["Arguments"] == {
        "model_package_arn": {"Get": "Steps.RegisterModel.ModelPackageArn"},
        "endpoint_name": "samay-lung-sound",
        "instance_type": {"Get": "Parameters.EndpointInstanceType"},
        "role_arn": ROLE,
    }
    assert [(o["OutputName"], o["OutputType"]) for o in deploy["OutputParameters"]] == [
        (name, "String") for name in ("endpoint_name", "endpoint_config_name", "model_name", "action")
    ]


def test_fail_message_carries_accuracy_threshold_and_baseline(definition: dict[str, Any]) -> None:
    message = steps_by_name(definition)["Fail"]["Arguments"]["ErrorMessage"]["Std:Join"]
    assert json_get(ACCURACY_JSON_PATH) in message["Values"]
    assert {"Get": "Parameters.AccuracyThreshold"} in message["Values"]
    assert json_get(BASELINE_JSON_PATH) in message["Values"]
    rendered = message["On"].join(v if isinstance(v, str) else "<value>" for v in message["Values"])
    assert rendered == (
        f"Model rejected: {ACCURACY_JSON_PATH} = <value>, needs >= AccuracyThreshold = <value>"
        f" and > {BASELINE_JSON_PATH} (majority class) = <value>"
    )


def test_job_steps_are_cached_and_named_without_timestamps(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    for name in ("Preprocess", "Train", "Evaluate"):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    assert steps["Preprocess"]["Arguments"]["ProcessingJobName"] == "samay-preprocess"
    assert steps["Train"]["Arguments"]["TrainingJobName"] == "samay-train"
    assert not re.search(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}", json.dumps(definition))


def test_two_builds_render_byte_identical_definitions(pipeline, bucket: str) -> None:
    from pipelines.pipeline import get_pipeline

    again = get_pipeline(REGION, role=ROLE, default_bucket=bucket)
    assert pipeline.definition() == again.definition()


def test_step_code_is_uploaded_to_the_sessions_s3_endpoint(pipeline, bucket: str) -> None:
    # The code input of Preprocess points at an object the SDK put into moto (AWS_ENDPOINT_URL).
    preprocess = steps_by_name(json.loads(pipeline.definition()))["Preprocess"]["Arguments"]
    code_uri = next(i["S3Input"]["S3Uri"] for i in preprocess["ProcessingInputs"] if i["InputName"] == "code")
    key = code_uri.removeprefix(f"s3://{bucket}/")
    assert key.startswith("PredictionsSamayPipeline/code/") and key.endswith("/sourcedir.tar.gz")
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    names = tarfile.open(fileobj=io.BytesIO(body)).getnames()
    # entry scripts at the root, the steps package beside them, the container extras, no caches
    assert {"preprocess.py", "train.py", "evaluate.py", "requirements.txt", "steps/__init__.py", "steps/metrics.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_moto_accepts_the_definition(definition: dict[str, Any], bucket: str) -> None:
    sm = aws.client("sagemaker")
    arn = sm.create_pipeline(PipelineName="PredictionsSamayPipeline", PipelineDefinition=json.dumps(definition), RoleArn=ROLE)["PipelineArn"]
    stored = sm.describe_pipeline(PipelineName="PredictionsSamayPipeline")
    assert stored["PipelineArn"] == arn
    assert json.loads(stored["PipelineDefinition"]) == definition


def test_upsert_through_the_sdk_creates_then_updates(pipeline) -> None:
    first = pipeline.upsert(role_arn=ROLE)["PipelineArn"]
    second = pipeline.upsert(role_arn=ROLE)["PipelineArn"]
    assert first == second
    stored = aws.client("sagemaker").describe_pipeline(PipelineName="PredictionsSamayPipeline")
    assert json.loads(stored["PipelineDefinition"]) == json.loads(pipeline.definition())
