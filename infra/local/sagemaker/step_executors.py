"""One executor per step type: each turns a step's resolved Arguments into its properties.

The walker (executor.py) picks the class from STEP_EXECUTORS by the step's Type, asks it for the
resolved arguments (and which of them form the cache key, per AWS's documented cache attributes),
then calls `execute`. A step that cannot succeed raises StepFailed(step_name, reason); nothing here
catches it and carries on.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from infra.local import functions, jobs
from infra.local.router import FUNCTIONS_ENV
from infra.local.sagemaker.definition import StepSpec
from infra.local.sagemaker.exceptions import SageMakerError
from infra.local.sagemaker.expressions import Evaluator, text
from infra.local.sagemaker.models.backend import SageMakerBackend
from infra.local.sagemaker.models.base import Record, call_with_params
from infra.local.sagemaker.models.jobs import PROCESSING, TRAINING, JobKind

logger = logging.getLogger(__name__)

_LAMBDA_OUTPUT_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool}


class StepFailed(Exception):
    """The step ended Failed; `reason` becomes its FailureReason and the execution's."""

    def __init__(self, step_name: str, reason: str) -> None:
        super().__init__(f"step {step_name} failed: {reason}")
        self.step_name = step_name
        self.reason = reason


class StepStopped(Exception):
    """The step's job was stopped by StopPipelineExecution: the step and the execution end Stopped."""

    def __init__(self, step_name: str) -> None:
        super().__init__(f"step {step_name} stopped")
        self.step_name = step_name


@dataclass(frozen=True)
class StepContext:
    backend: SageMakerBackend
    execution_arn: str
    execution_id: str
    evaluator: Evaluator
    stop: threading.Event


@dataclass(frozen=True)
class StepResult:
    properties: Record  # what `{"Get": "Steps.<name>...."}` reads
    metadata: Record  # the step's Metadata in ListPipelineExecutionSteps


class StepExecutor:
    cache_attributes: ClassVar[tuple[str, ...] | None] = None  # None: every argument is in the key

    def __init__(self, context: StepContext, step: StepSpec) -> None:
        self.context = context
        self.step = step

    @property
    def resource_name(self) -> str:
        """The deterministic name of the job or model this step creates (AWS: pipelines-<id>-<step>-<random>)."""
        return _resource_name(f"pipelines-{self.context.execution_id}-{self.step.name}")

    def arguments(self) -> Any:
        return self.context.evaluator.resolve(self.step.body.get("Arguments", {}), self.local_variables())

    def local_variables(self) -> dict[str, str]:
        return {}

    def cache_source(self, arguments: Any) -> Any:
        if self.cache_attributes is None:
            return arguments
        return {key: arguments.get(key) for key in self.cache_attributes}

    def execute(self, arguments: Any) -> StepResult:
        raise NotImplementedError

    def record_metadata(self, metadata: Record) -> None:
        """Show metadata while the step still runs (AWS lists a job's ARN as soon as it exists)."""
        self.context.backend.update_step(self.context.execution_arn, self.step.name, Metadata=metadata)


class JobStepExecutor(StepExecutor):
    kind: ClassVar[JobKind]
    result_fields: ClassVar[tuple[str, ...]] = ()  # what the job runner reports that the record keeps

    @property
    def resource_name(self) -> str:
        """With the SDK's `use_custom_job_prefix` the definition names the job: AWS suffixes that prefix."""
        prefix = self.step.body.get("Arguments", {}).get(self.kind.field("JobName"))
        if not isinstance(prefix, str):
            return super().resource_name
        return _resource_name(f"{prefix}-{self.context.execution_id}")

    def local_variables(self) -> dict[str, str]:
        return {self.kind.field("JobName"): self.resource_name}

    def arguments(self) -> Any:
        """As CreateXJob takes them: HyperParameters and Environment are maps of strings."""
        arguments = super().arguments()
        for field_name in ("HyperParameters", "Environment"):
            if isinstance(arguments.get(field_name), dict):
                arguments[field_name] = {key: text(value) for key, value in arguments[field_name].items()}
        return arguments

    def run_job(self, request: Record, job_dir: Any, log_path: Any) -> Record:
        raise NotImplementedError

    def execute(self, arguments: Any) -> StepResult:
        backend, name = self.context.backend, self.resource_name
        request = {**arguments, self.kind.field("JobName"): name}
        record = backend.record_job(self.kind, request)
        metadata = {f"{self.kind.prefix}Job": {"Arn": record[self.kind.field("JobArn")]}}
        self.record_metadata(metadata)
        try:
            described = self.run_job(request, backend.jobs_dir / name, backend.jobs_dir / f"{name}.log")
        except jobs.JobStopped as stopped:
            backend.set_job_status(self.kind, name, "Stopped", stopped.reason)
            raise StepStopped(self.step.name) from None
        except jobs.JobFailed as failed:
            reason = failed.reason
        except Exception as err:  # the runner's own bug: the job and the step still end Failed, with the cause
            logger.exception("job %s crashed in the job runner", name)
            reason = f"InternalServerError: {type(err).__name__}: {err}"
        else:
            results = {key: value for key, value in described.items() if key in self.result_fields}
            return StepResult(backend.set_job_status(self.kind, name, "Completed", **results), metadata)
        backend.set_job_status(self.kind, name, "Failed", reason)
        raise StepFailed(self.step.name, reason)


class ProcessingStepExecutor(JobStepExecutor):
    kind = PROCESSING
    cache_attributes = ("AppSpecification", "Environment", "ProcessingInputs")
    result_fields = ("ExitMessage",)

    def run_job(self, request: Record, job_dir: Any, log_path: Any) -> Record:
        return jobs.run_processing_job(request, job_dir, log_path, stop=self.context.stop)


class TrainingStepExecutor(JobStepExecutor):
    kind = TRAINING
    cache_attributes = ("AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig",
                        "DebugRuleConfigurations", "Environment", "HyperParameters", "InputDataConfig")
    result_fields = ("ModelArtifacts", "FinalMetricDataList", "BillableTimeInSeconds", "OutputDataConfig")

    def run_job(self, request: Record, job_dir: Any, log_path: Any) -> Record:
        return jobs.run_training_job(request, job_dir, log_path, stop=self.context.stop)


class ConditionStepExecutor(StepExecutor):
    def arguments(self) -> Any:
        # Only the conditions: IfSteps/ElseSteps hold steps that have not run yet.
        return self.step.body["Arguments"]["Conditions"]

    def execute(self, arguments: Any) -> StepResult:
        outcome = all(self.context.evaluator.condition(condition) for condition in arguments)
        return StepResult({"Outcome": outcome}, {"Condition": {"Outcome": "True" if outcome else "False"}})


class RegisterModelStepExecutor(StepExecutor):
    def execute(self, arguments: Any) -> StepResult:
        backend = self.context.backend
        try:
            arn = call_with_params(backend.create_model_package, arguments)["ModelPackageArn"]
        except SageMakerError as err:
            raise StepFailed(self.step.name, f"{err.code}: {err.message}") from None
        return StepResult(backend.describe_model_package(arn), {"RegisterModel": {"Arn": arn}})


class ModelStepExecutor(StepExecutor):
    def execute(self, arguments: Any) -> StepResult:
        backend = self.context.backend
        try:
            arn = call_with_params(backend.create_model, {**arguments, "ModelName": self.resource_name})["ModelArn"]
        except SageMakerError as err:
            raise StepFailed(self.step.name, f"{err.code}: {err.message}") from None
        return StepResult(backend.describe_model(self.resource_name), {"Model": {"Arn": arn}})


class LambdaStepExecutor(StepExecutor):
    def execute(self, arguments: Any) -> StepResult:
        function_arn = self.step.body.get("FunctionArn", "")
        try:
            answer = functions.invoke_function(function_arn, arguments, functions=_function_table())
        except (functions.FunctionNotFound, functions.FunctionError) as err:
            raise StepFailed(self.step.name, str(err)) from None
        outputs = {spec["OutputName"]: self._output(answer, spec) for spec in self.step.body.get("OutputParameters", [])}
        metadata = {"Lambda": {"Arn": function_arn,
                               "OutputParameters": [{"Name": name, "Value": text(value)} for name, value in outputs.items()]}}
        return StepResult({"OutputParameters": outputs}, metadata)

    def _output(self, answer: Any, spec: Record) -> Any:
        name, type_name = spec["OutputName"], spec.get("OutputType", "String")
        if not isinstance(answer, dict) or name not in answer:
            raise StepFailed(self.step.name, f"Lambda function output does not contain the declared output '{name}'")
        try:
            return _LAMBDA_OUTPUT_TYPES.get(type_name, str)(answer[name])
        except (TypeError, ValueError):
            raise StepFailed(self.step.name, f"Lambda output '{name}'={answer[name]!r} is not a {type_name}") from None


class FailStepExecutor(StepExecutor):
    def execute(self, arguments: Any) -> StepResult:
        message = text(arguments.get("ErrorMessage", "")) if isinstance(arguments, dict) else ""
        self.record_metadata({"Fail": {"ErrorMessage": message}})
        raise StepFailed(self.step.name, message)


def _resource_name(name: str) -> str:
    """A valid job/model name: letters, digits and hyphens, at most 63 characters."""
    return re.sub(r"[^a-zA-Z0-9-]", "-", name)[:63].rstrip("-")


def _function_table() -> dict[str, str]:
    """The project's functions, with the same test overrides the event router honours."""
    return {**functions.FUNCTIONS, **json.loads(os.environ.get(FUNCTIONS_ENV, "{}"))}


STEP_EXECUTORS: dict[str, type[StepExecutor]] = {
    "Processing": ProcessingStepExecutor,
    "Training": TrainingStepExecutor,
    "Condition": ConditionStepExecutor,
    "RegisterModel": RegisterModelStepExecutor,
    "Model": ModelStepExecutor,
    "Lambda": LambdaStepExecutor,
    "Fail": FailStepExecutor,
}
