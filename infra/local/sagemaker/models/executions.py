"""Pipeline executions and their steps: the API side, and the recording methods the executor calls.

Every status change of an execution or a step goes through `set_execution_status` /
`set_step_status`, so it is stored (and announced to `on_status_change`) in one place.
"""
from __future__ import annotations

import secrets
import string
import threading
from typing import Any

from infra.local.sagemaker.definition import coerce_parameter, parse_definition
from infra.local.sagemaker.exceptions import ResourceNotFound, ValidationException
from infra.local.sagemaker.models.base import Record, now, page, public, require

TERMINAL_EXECUTION_STATUSES = ("Succeeded", "Failed", "Stopped")
_ID_ALPHABET = string.ascii_lowercase + string.digits


class ExecutionsMixin:
    """State of PipelineExecution resources and their steps; mixed into SageMakerBackend."""

    executions: dict[str, Record]
    execution_steps: dict[str, dict[str, Record]]
    request_tokens: dict[str, str]
    stop_signals: dict[str, threading.Event]

    def start_pipeline_execution(
        self,
        pipeline_name: str,
        pipeline_execution_display_name: str | None = None,
        pipeline_parameters: list[dict[str, str]] | None = None,
        pipeline_execution_description: str | None = None,
        client_request_token: str | None = None,
        parallelism_configuration: dict[str, Any] | None = None,
        selective_execution_config: dict[str, Any] | None = None,
    ) -> Record:
        with self.lock:
            pipeline = self.get_pipeline(pipeline_name)
            token_key = f"{pipeline['PipelineArn']}|{client_request_token}"
            if client_request_token and token_key in self.request_tokens:
                return {"PipelineExecutionArn": self.request_tokens[token_key]}
            definition_text = pipeline["PipelineDefinition"]
            parameters = _resolve_parameters(definition_text, pipeline_parameters or [])
            execution_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
            arn = f"{pipeline['PipelineArn']}/execution/{execution_id}"
            created = now()
            self.executions[arn] = {
                "PipelineArn": pipeline["PipelineArn"],
                "PipelineExecutionArn": arn,
                "PipelineExecutionDisplayName": pipeline_execution_display_name or f"execution-{int(created * 1000)}",
                "PipelineExecutionStatus": "Executing",
                "PipelineExecutionDescription": pipeline_execution_description or "",
                "CreationTime": created,
                "LastModifiedTime": created,
                "RoleArn": pipeline["RoleArn"],
                "PipelineVersionId": pipeline["_version"],
                "_pipeline_name": pipeline["PipelineName"],
                "_definition": definition_text,
                "_parameters": parameters,
            }
            self.execution_steps[arn] = {}
            if client_request_token:
                self.request_tokens[token_key] = arn
            pipeline["LastExecutionTime"] = pipeline["LastRunTime"] = created
            self._save()
        self._notify("PipelineExecution", arn, "Executing")
        self._launch_execution(arn)
        return {"PipelineExecutionArn": arn}

    def describe_pipeline_execution(self, pipeline_execution_arn: str) -> Record:
        with self.lock:
            return public(self.get_execution(pipeline_execution_arn))

    def list_pipeline_executions(
        self,
        pipeline_name: str,
        created_after: float | None = None,
        created_before: float | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Record:
        with self.lock:
            pipeline_arn = self.get_pipeline(pipeline_name)["PipelineArn"]
            rows = [
                _execution_summary(record)
                for record in self.executions.values()
                if record["PipelineArn"] == pipeline_arn
                and (created_after is None or record["CreationTime"] > float(created_after))
                and (created_before is None or record["CreationTime"] < float(created_before))
            ]
        return page(rows, "PipelineExecutionSummaries", max_results=max_results, next_token=next_token,
                    sort_by="StartTime", sort_order=sort_order, default_order="Descending")

    def stop_pipeline_execution(self, pipeline_execution_arn: str, client_request_token: str | None = None) -> Record:
        with self.lock:
            record = self.get_execution(pipeline_execution_arn)
            status = record["PipelineExecutionStatus"]
            if status in TERMINAL_EXECUTION_STATUSES:
                raise ValidationException(f"Pipeline execution '{pipeline_execution_arn}' is {status} and cannot be stopped")
        if status == "Executing":
            self.set_execution_status(pipeline_execution_arn, "Stopping")
            self.stop_signal(pipeline_execution_arn).set()
        return {"PipelineExecutionArn": pipeline_execution_arn}

    def describe_pipeline_definition_for_execution(self, pipeline_execution_arn: str) -> Record:
        """The definition as it was when the execution started (a later UpdatePipeline does not change it)."""
        with self.lock:
            record = self.get_execution(pipeline_execution_arn)
            return {"PipelineDefinition": record["_definition"], "CreationTime": record["CreationTime"]}

    def list_pipeline_execution_steps(
        self,
        pipeline_execution_arn: str,
        sort_order: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Record:
        with self.lock:
            self.get_execution(pipeline_execution_arn)
            rows = [public(step) for step in self.execution_steps[pipeline_execution_arn].values()]
        # AWS lists the newest step first.
        return page(rows, "PipelineExecutionSteps", max_results=max_results, next_token=next_token,
                    sort_by="StartTime", sort_order=sort_order, default_order="Descending")

    def list_pipeline_parameters_for_execution(
        self, pipeline_execution_arn: str, max_results: int | None = None, next_token: str | None = None
    ) -> Record:
        with self.lock:
            parameters = self.get_execution(pipeline_execution_arn)["_parameters"]
        rows = [{"Name": name, "Value": _as_text(value)} for name, value in parameters.items()]
        return page(rows, "PipelineParameters", max_results=max_results, next_token=next_token)

    # ---- recording, called by the executor -------------------------------------------------

    def get_execution(self, pipeline_execution_arn: str) -> Record:
        require(pipeline_execution_arn, "pipelineExecutionArn")
        record = self.executions.get(pipeline_execution_arn)
        if record is None:
            raise ResourceNotFound(f"Pipeline execution '{pipeline_execution_arn}' does not exist.")
        return record

    def set_execution_status(self, arn: str, status: str, failure_reason: str | None = None) -> None:
        with self.lock:
            record = self.get_execution(arn)
            record["PipelineExecutionStatus"] = status
            record["LastModifiedTime"] = now()
            if failure_reason:
                record["FailureReason"] = failure_reason[:3072]
            self._save()
        self._notify("PipelineExecution", arn, status)

    def stop_signal(self, arn: str) -> threading.Event:
        """Set when StopPipelineExecution asks a running execution (and its running job) to stop."""
        with self.lock:
            return self.stop_signals.setdefault(arn, threading.Event())

    def start_step(self, arn: str, step_name: str, display_name: str | None = None, description: str | None = None) -> None:
        with self.lock:
            step: Record = {"StepName": step_name, "StartTime": now(), "StepStatus": "Executing",
                            "AttemptCount": 1, "Metadata": {}}
            if display_name:
                step["StepDisplayName"] = display_name
            if description:
                step["StepDescription"] = description
            self.execution_steps[arn][step_name] = step
            self._save()

    def update_step(self, arn: str, step_name: str, **fields: Any) -> None:
        """Attach Metadata, CacheHitResult or internal fields (`_properties`, `_cache_key`) to a step."""
        with self.lock:
            self.execution_steps[arn][step_name].update(fields)
            self._save()

    def set_step_status(self, arn: str, step_name: str, status: str, failure_reason: str | None = None) -> None:
        with self.lock:
            step = self.execution_steps[arn][step_name]
            step["StepStatus"] = status
            step["EndTime"] = now()
            if failure_reason:
                step["FailureReason"] = failure_reason[:1024]
            self._save()

    def step_record(self, arn: str, step_name: str) -> Record | None:
        with self.lock:
            return self.execution_steps.get(arn, {}).get(step_name)

    def find_cached_step(self, pipeline_arn: str, step_name: str, cache_key: str, not_before: float) -> tuple[str, Record] | None:
        """The newest Succeeded run of this step with the same cache key since `not_before`."""
        with self.lock:
            hits = [
                (arn, step)
                for arn, record in self.executions.items()
                if record["PipelineArn"] == pipeline_arn
                for step in [self.execution_steps.get(arn, {}).get(step_name)]
                if step and step["StepStatus"] == "Succeeded" and step.get("_cache_key") == cache_key
                and step.get("EndTime", 0) >= not_before and "CacheHitResult" not in step
            ]
        return max(hits, key=lambda hit: hit[1]["EndTime"]) if hits else None

    def fail_interrupted_executions(self) -> None:
        """Executions a previous service process left running cannot resume: mark them Failed."""
        with self.lock:
            running = [arn for arn, record in self.executions.items()
                       if record["PipelineExecutionStatus"] in ("Executing", "Stopping")]
        for arn in running:
            self.set_execution_status(arn, "Failed", "The local SageMaker service was restarted during this execution")


def _resolve_parameters(definition_text: str, overrides: list[dict[str, str]]) -> dict[str, Any]:
    declared = parse_definition(definition_text).parameters
    values = {name: spec["DefaultValue"] for name, spec in declared.items()}
    for override in overrides:
        name = override.get("Name")
        if name not in declared:
            raise ValidationException(f"Pipeline parameter '{name}' is not defined in the pipeline definition")
        values[name] = override.get("Value")
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ValidationException(f"Pipeline parameter(s) {missing} have no default value and were not given")
    return {name: coerce_parameter(name, declared[name]["Type"], value) for name, value in values.items()}


def _execution_summary(record: Record) -> Record:
    summary = {
        "PipelineExecutionArn": record["PipelineExecutionArn"],
        "StartTime": record["CreationTime"],
        "PipelineExecutionStatus": record["PipelineExecutionStatus"],
        "PipelineExecutionDescription": record["PipelineExecutionDescription"],
        "PipelineExecutionDisplayName": record["PipelineExecutionDisplayName"],
    }
    if record.get("FailureReason"):
        summary["PipelineExecutionFailureReason"] = record["FailureReason"]
    return summary


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
