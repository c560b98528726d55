"""The executor on small hand-written definitions: processing/training jobs run by the local job
runner, JsonGet on a property file, conditions and branches, RegisterModel, caching, Fail, stop."""
from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

import pytest

from infra.local.router import FUNCTIONS_ENV
from infra.local.sagemaker import executor
from infra.local.sagemaker.models.backend import SageMakerBackend
from tests.local.conftest import ROLE_ARN, definition, fail_step, steps_by_name, wait_for_execution

BUCKET = "executor-tests"
GROUP = "ExecutorModels"
EVALUATE_SCRIPT = """
import argparse, json, pathlib, time
parser = argparse.ArgumentParser()
parser.add_argument("--accuracy", type=float)
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--fail", default="")
parser.add_argument("--output-dir", default="/opt/ml/processing/evaluation")
args = parser.parse_args()
time.sleep(args.sleep)
if args.fail:
    raise SystemExit(f"evaluation refused: {args.fail}")
out = pathlib.Path(args.output_dir)
(out / "evaluation.json").write_text(json.dumps({"metrics": {"accuracy": {"value": args.accuracy}}}))
"""
TRAIN_SCRIPT = """
import os, pathlib, sys
model_dir = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model_dir / "weights.txt").write_text(" ".join(sys.argv[1:]))
"""
THRESHOLD = [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.7}]
ACCURACY = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
                            "Path": "metrics.accuracy.value"}}


@pytest.fixture
def code(s3) -> dict[str, str]:
    """The scripts in moto's S3: the evaluation script and a training source bundle."""
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="code/evaluate.py", Body=EVALUATE_SCRIPT.encode())
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as archive:
        data = TRAIN_SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=bundle.getvalue())
    return {"evaluate": f"s3://{BUCKET}/code/evaluate.py", "bundle": f"s3://{BUCKET}/code/sourcedir.tar.gz"}


def evaluate_step(script_uri: str, arguments: list[Any], cache: bool = False) -> dict[str, Any]:
    output_uri = {"Std:Join": {"On": "/", "Values": ["s3:/", BUCKET, "runs", {"Get": "Execution.PipelineExecutionId"},
                                                     "Evaluate", "evaluation"]}}
    step: dict[str, Any] = {
        "Name": "Evaluate",
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                      "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": "local/python",
                                 "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/evaluate.py"],
                                 "ContainerArguments": [*arguments, "--output-dir", "/opt/ml/processing/evaluation"]},
            "RoleArn": ROLE_ARN,
            "ProcessingInputs": [{"InputName": "code", "AppManaged": False, "S3Input": {
                "S3Uri": script_uri, "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix",
                "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "evaluation", "AppManaged": False, "S3Output": {
                "S3Uri": output_uri, "LocalPath": "/opt/ml/processing/evaluation", "S3UploadMode": "EndOfJob"}}]},
        },
        "PropertyFiles": [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation",
                           "FilePath": "evaluation.json"}],
    }
    if cache:
        step["CacheConfig"] = {"Enabled": True, "ExpireAfter": "P30d"}
    return step


def train_step(bundle_uri: str) -> dict[str, Any]:
    return {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "local/tensorflow"},
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.m5.large"},
            "RoleArn": ROLE_ARN,
            "HyperParameters": {"epochs": "2", "sagemaker_program": '"train.py"',
                                "sagemaker_submit_directory": json.dumps(bundle_uri)},
        },
    }


def register_step(model_data: Any) -> dict[str, Any]:
    return {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": GROUP,
        "InferenceSpecification": {"Containers": [{"Image": "local/tfs", "ModelDataUrl": model_data}],
                                   "SupportedContentTypes": ["audio/wav"],
                                   "SupportedResponseMIMETypes": ["application/json"]},
        "ModelApprovalStatus": "Approved",
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": {
            "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}}}},
    }}


def gate(if_steps: list[dict[str, Any]]) -> dict[str, Any]:
    message = {"Std:Join": {"On": " ", "Values": ["accuracy", ACCURACY, "is below", {"Get": "Parameters.Threshold"}]}}
    return {"Name": "CheckAccuracy", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": ACCURACY,
                        "RightValue": {"Get": "Parameters.Threshold"}}],
        "IfSteps": if_steps, "ElseSteps": [fail_step("AccuracyTooLow", message)]}}


def run(sagemaker: Any, steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None,
        overrides: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    text = definition(*steps, parameters=parameters)
    try:
        sagemaker.create_pipeline(PipelineName="Gate", RoleArn=ROLE_ARN, PipelineDefinition=text)
    except sagemaker.exceptions.ClientError:
        sagemaker.update_pipeline(PipelineName="Gate", PipelineDefinition=text)
    arn = sagemaker.start_pipeline_execution(PipelineName="Gate", PipelineParameters=[
        {"Name": name, "Value": value} for name, value in (overrides or {}).items()])["PipelineExecutionArn"]
    return arn, wait_for_execution(sagemaker, arn)


def test_condition_on_json_get_passes_and_registers_model(sagemaker, code):
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    model_data = {"Std:Join": {"On": "", "Values": [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "/model.tar.gz"]}}
    steps = [evaluate_step(code["evaluate"], ["--accuracy", "0.82"]), gate([register_step(model_data)])]

    arn, described = run(sagemaker, steps, THRESHOLD)

    assert described["PipelineExecutionStatus"] == "Succeeded", described.get("FailureReason")
    listed = steps_by_name(sagemaker, arn)
    assert set(listed) == {"Evaluate", "CheckAccuracy", "Register"}
    assert listed["CheckAccuracy"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    package_arn = listed["Register"]["Metadata"]["RegisterModel"]["Arn"]
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    execution_id = arn.rsplit("/", 1)[-1]
    evaluation_uri = f"s3://{BUCKET}/runs/{execution_id}/Evaluate/evaluation"
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == f"{evaluation_uri}/model.tar.gz"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == evaluation_uri
    job_arn = listed["Evaluate"]["Metadata"]["ProcessingJob"]["Arn"]
    job = sagemaker.describe_processing_job(ProcessingJobName=job_arn.rsplit("/", 1)[-1])
    assert job["ProcessingJobName"] == f"pipelines-{execution_id}-Evaluate"
    assert job["ProcessingJobStatus"] == "Completed"


def test_condition_below_threshold_fails_with_resolved_message(sagemaker, code):
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    steps = [evaluate_step(code["evaluate"], ["--accuracy", "0.82"]), gate([register_step("s3://x/model.tar.gz")])]

    arn, described = run(sagemaker, steps, THRESHOLD, overrides={"Threshold": "0.99"})

    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "accuracy 0.82 is below 0.99"
    listed = steps_by_name(sagemaker, arn)
    assert set(listed) == {"Evaluate", "CheckAccuracy", "AccuracyTooLow"}
    assert listed["CheckAccuracy"]["Metadata"] == {"Condition": {"Outcome": "False"}}
    assert listed["AccuracyTooLow"]["Metadata"]["Fail"]["ErrorMessage"] == "accuracy 0.82 is below 0.99"
    assert sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []


def test_failing_processing_job_fails_step_and_execution_with_job_reason(sagemaker, code):
    steps = [evaluate_step(code["evaluate"], ["--accuracy", "0.5", "--fail", "no test data"]), gate([])]

    arn, described = run(sagemaker, steps, THRESHOLD)

    assert described["PipelineExecutionStatus"] == "Failed"
    assert "no test data" in described["FailureReason"]
    listed = steps_by_name(sagemaker, arn)
    assert set(listed) == {"Evaluate"}
    assert listed["Evaluate"]["StepStatus"] == "Failed"
    job = sagemaker.describe_processing_job(ProcessingJobName=f"pipelines-{arn.rsplit('/', 1)[-1]}-Evaluate")
    assert job["ProcessingJobStatus"] == "Failed"
    assert "no test data" in job["FailureReason"]


def test_cache_hit_on_second_run_reuses_the_first_runs_outputs(sagemaker, code):
    steps = [evaluate_step(code["evaluate"], ["--accuracy", "0.9"], cache=True), gate([])]
    first_arn, first = run(sagemaker, steps, THRESHOLD)

    second_arn, second = run(sagemaker, steps, THRESHOLD, overrides={"Threshold": "0.8"})

    assert (first["PipelineExecutionStatus"], second["PipelineExecutionStatus"]) == ("Succeeded", "Succeeded")
    first_step, second_step = steps_by_name(sagemaker, first_arn)["Evaluate"], steps_by_name(sagemaker, second_arn)["Evaluate"]
    assert "CacheHitResult" not in first_step
    assert second_step["CacheHitResult"] == {"SourcePipelineExecutionArn": first_arn}
    assert second_step["Metadata"] == first_step["Metadata"]
    assert len(sagemaker.list_processing_jobs()["ProcessingJobSummaries"]) == 1


def test_cache_miss_when_cache_key_arguments_change(sagemaker, code):
    run(sagemaker, [evaluate_step(code["evaluate"], ["--accuracy", "0.9"], cache=True), gate([])], THRESHOLD)

    arn, described = run(sagemaker, [evaluate_step(code["evaluate"], ["--accuracy", "0.95"], cache=True), gate([])],
                         THRESHOLD)

    assert described["PipelineExecutionStatus"] == "Succeeded"
    assert "CacheHitResult" not in steps_by_name(sagemaker, arn)["Evaluate"]
    assert len(sagemaker.list_processing_jobs()["ProcessingJobSummaries"]) == 2


def test_training_step_then_model_step_use_model_artifacts(sagemaker, code, s3):
    create_model = {"Name": "CreateModel", "Type": "Model", "Arguments": {
        "ExecutionRoleArn": ROLE_ARN,
        "PrimaryContainer": {"Image": "local/tfs", "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}}}

    arn, described = run(sagemaker, [train_step(code["bundle"]), create_model])

    assert described["PipelineExecutionStatus"] == "Succeeded", described.get("FailureReason")
    listed = steps_by_name(sagemaker, arn)
    job_name = f"pipelines-{arn.rsplit('/', 1)[-1]}-Train"
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    artifacts = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert job["TrainingJobStatus"] == "Completed"
    assert listed["Train"]["Metadata"] == {"TrainingJob": {"Arn": job["TrainingJobArn"]}}
    assert artifacts == f"s3://{BUCKET}/models/{job_name}/output/model.tar.gz"
    model = sagemaker.describe_model(ModelName=listed["CreateModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[-1])
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifacts
    archive = tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=BUCKET, Key=artifacts.split("/", 3)[3])["Body"].read()))
    assert archive.extractfile("weights.txt").read() == b"--epochs 2"
    summaries = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [summary["TrainingJobName"] for summary in summaries] == [job_name]


def test_stop_pipeline_execution_stops_the_running_job(sagemaker, code):
    steps = [evaluate_step(code["evaluate"], ["--accuracy", "0.9", "--sleep", "600"]), gate([])]
    sagemaker.create_pipeline(PipelineName="Slow", RoleArn=ROLE_ARN, PipelineDefinition=definition(*steps, parameters=THRESHOLD))
    arn = sagemaker.start_pipeline_execution(PipelineName="Slow")["PipelineExecutionArn"]
    job_name = f"pipelines-{arn.rsplit('/', 1)[-1]}-Evaluate"
    while not sagemaker.list_processing_jobs(NameContains=job_name)["ProcessingJobSummaries"]:
        time.sleep(0.1)

    sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="0123456789abcdef0123456789abcdef")

    described = wait_for_execution(sagemaker, arn)
    assert described["PipelineExecutionStatus"] == "Stopped"
    listed = steps_by_name(sagemaker, arn)
    assert set(listed) == {"Evaluate"}
    assert listed["Evaluate"]["StepStatus"] == "Stopped"
    assert sagemaker.describe_processing_job(ProcessingJobName=job_name)["ProcessingJobStatus"] == "Stopped"


def test_json_get_of_missing_path_fails_the_condition_step(sagemaker, code):
    steps = [evaluate_step(code["evaluate"], ["--accuracy", "0.9"]), gate([])]
    steps[1]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]["Path"] = "metrics.f1.value"

    arn, described = run(sagemaker, steps, THRESHOLD)

    assert described["PipelineExecutionStatus"] == "Failed"
    assert "'metrics.f1.value' does not exist" in described["FailureReason"]
    assert steps_by_name(sagemaker, arn)["CheckAccuracy"]["StepStatus"] == "Failed"


def test_lambda_step_unknown_function_fails_with_lambda_error(sagemaker):
    step = {"Name": "Notify", "Type": "Lambda", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:ghost",
            "Arguments": {"x": 1}, "OutputParameters": [{"OutputName": "ok", "OutputType": "String"}]}

    arn, described = run(sagemaker, [step])

    assert described["PipelineExecutionStatus"] == "Failed"
    assert "Function not found" in described["FailureReason"]
    assert steps_by_name(sagemaker, arn)["Notify"]["StepStatus"] == "Failed"


def deploy_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stands in for a project function in the Lambda step tests: answers from its event."""
    return {"endpoint_name": f"{event['name']}-endpoint", "replicas": event["replicas"]}


def _run_in_process(tmp_path, steps: list[dict[str, Any]], seen: list[tuple[str, str, str]]) -> tuple[Any, str]:
    backend = SageMakerBackend("123456789012", "us-east-1", tmp_path, launch_execution=executor.launch,
                               on_status_change=lambda *change: seen.append(change))
    backend.create_pipeline("InProcess", ROLE_ARN, definition(*steps, parameters=[
        {"Name": "Replicas", "Type": "Integer", "DefaultValue": 3}]))
    arn = backend.start_pipeline_execution("InProcess")["PipelineExecutionArn"]
    while backend.describe_pipeline_execution(arn)["PipelineExecutionStatus"] == "Executing":
        time.sleep(0.05)
    return backend, arn


def _lambda_step(outputs: list[dict[str, str]]) -> dict[str, Any]:
    return {"Name": "Deploy", "Type": "Lambda", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:samay-test-deploy",
            "Arguments": {"name": {"Std:Join": {"On": "", "Values": ["lun", "gs"]}}, "replicas": {"Get": "Parameters.Replicas"}},
            "OutputParameters": outputs}


def test_lambda_step_outputs_feed_later_steps(tmp_path, monkeypatch):
    monkeypatch.setenv(FUNCTIONS_ENV, json.dumps({"samay-test-deploy": f"{__name__}:deploy_handler"}))
    report = fail_step("Report", {"Std:Join": {"On": " ", "Values": [
        "deployed", {"Get": "Steps.Deploy.OutputParameters['endpoint_name']"},
        {"Get": "Steps.Deploy.OutputParameters['replicas']"}]}})
    seen: list[tuple[str, str, str]] = []

    backend, arn = _run_in_process(tmp_path, [_lambda_step([{"OutputName": "endpoint_name", "OutputType": "String"},
                                                            {"OutputName": "replicas", "OutputType": "Integer"}]), report], seen)

    assert backend.describe_pipeline_execution(arn)["FailureReason"] == "deployed lungs-endpoint 3"
    deploy = {s["StepName"]: s for s in backend.list_pipeline_execution_steps(arn)["PipelineExecutionSteps"]}["Deploy"]
    assert deploy["StepStatus"] == "Succeeded"
    assert deploy["Metadata"]["Lambda"] == {
        "Arn": "arn:aws:lambda:us-east-1:123456789012:function:samay-test-deploy",
        "OutputParameters": [{"Name": "endpoint_name", "Value": "lungs-endpoint"}, {"Name": "replicas", "Value": "3"}]}
    assert seen == [("PipelineExecution", arn, "Executing"), ("PipelineExecution", arn, "Failed")]


def test_lambda_step_missing_declared_output_fails_the_step(tmp_path, monkeypatch):
    monkeypatch.setenv(FUNCTIONS_ENV, json.dumps({"samay-test-deploy": f"{__name__}:deploy_handler"}))

    backend, arn = _run_in_process(tmp_path, [_lambda_step([{"OutputName": "url", "OutputType": "String"}])], [])

    described = backend.describe_pipeline_execution(arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Lambda function output does not contain the declared output 'url'"


def test_job_name_in_definition_is_a_prefix_suffixed_per_execution(sagemaker, code):
    step = train_step(code["bundle"])
    step["Arguments"]["TrainingJobName"] = "samay-train"
    step["Arguments"]["HyperParameters"]["epochs"] = {"Get": "Parameters.Epochs"}

    arn, described = run(sagemaker, [step], [{"Name": "Epochs", "Type": "Integer", "DefaultValue": 3}])

    assert described["PipelineExecutionStatus"] == "Succeeded", described.get("FailureReason")
    job = sagemaker.describe_training_job(TrainingJobName=f"samay-train-{arn.rsplit('/', 1)[-1]}")
    assert job["HyperParameters"]["epochs"] == "3"
