"""The pipeline executor: walks a stored definition JSON, one background thread per execution.

Order: DependsOn plus data dependencies (every `Get` of another step's properties), steps of a
Condition's branches after the Condition and only on the branch it took; sequential, in definition
order among ready steps. Each step goes Executing -> Succeeded | Failed through the backend; the
first StepFailed ends the execution Failed with that reason. A step with CacheConfig.Enabled whose
cache-key arguments match a Succeeded run of the same step of this pipeline within ExpireAfter is a
cache hit: its properties and metadata are reused and CacheHitResult names the source execution.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import datetime, timezone

from botocore.exceptions import BotoCoreError, ClientError

from infra.local.sagemaker.definition import StepSpec, parse_definition
from infra.local.sagemaker.expressions import EvaluationError, Evaluator, Scope
from infra.local.sagemaker.models.backend import SageMakerBackend
from infra.local.sagemaker.models.base import Record, now
from infra.local.sagemaker.step_executors import STEP_EXECUTORS, StepContext, StepFailed, StepStopped
from lambdas.shared import aws

logger = logging.getLogger(__name__)

_DURATION = re.compile(
    r"^P?(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$",
    re.IGNORECASE,
)
_SECONDS = {"years": 365 * 86400, "months": 30 * 86400, "weeks": 7 * 86400, "days": 86400,
            "hours": 3600, "minutes": 60, "seconds": 1}


def launch(backend: SageMakerBackend, execution_arn: str) -> None:
    """Run the execution in its own thread, so the service keeps answering meanwhile."""
    runner = ExecutionRunner(backend, execution_arn)
    threading.Thread(target=runner.run, name=f"execution-{runner.execution_id}", daemon=True).start()


def expire_after_seconds(duration: str | None) -> float:
    """ISO-8601 duration of CacheConfig.ExpireAfter ("P30d", "PT1H", "30dT5h"); none means no expiry."""
    if not duration:
        return float("inf")
    match = _DURATION.match(duration.strip())
    if match is None or not any(match.groupdict().values()):
        raise EvaluationError(f"CacheConfig.ExpireAfter '{duration}' is not an ISO-8601 duration")
    return float(sum(int(value) * _SECONDS[unit] for unit, value in match.groupdict().items() if value))


def read_s3_text(uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except (ClientError, BotoCoreError) as err:
        raise EvaluationError(f"cannot read {uri}: {err}") from None


class ExecutionRunner:
    def __init__(self, backend: SageMakerBackend, execution_arn: str) -> None:
        with backend.lock:
            record = dict(backend.get_execution(execution_arn))
        self.backend = backend
        self.execution_arn = execution_arn
        self.execution_id = execution_arn.rsplit("/", 1)[-1]
        self.pipeline_arn = record["PipelineArn"]
        self.definition = parse_definition(record["_definition"])
        started = datetime.fromtimestamp(record["CreationTime"], tz=timezone.utc).isoformat()
        scope = Scope(
            parameters=dict(record["_parameters"]),
            execution={"PipelineExecutionId": self.execution_id, "PipelineExecutionArn": execution_arn,
                       "PipelineName": record["_pipeline_name"], "PipelineArn": self.pipeline_arn,
                       "StartDateTime": started, "CurrentDateTime": started},
            property_files={step.name: {spec["PropertyFileName"]: spec for spec in step.body.get("PropertyFiles", [])}
                            for step in self.definition.steps.values()},
            read_text=read_s3_text,
        )
        self.evaluator = Evaluator(scope)
        self.stop = backend.stop_signal(execution_arn)
        self.context = StepContext(backend, execution_arn, self.execution_id, self.evaluator, self.stop)

    def run(self) -> None:
        try:
            status = self._walk()
        except StepFailed as failed:
            logger.info("execution %s failed at step %s: %s", self.execution_id, failed.step_name, failed.reason)
            self.backend.set_execution_status(self.execution_arn, "Failed", failed.reason)
        except StepStopped as stopped:
            logger.info("execution %s stopped during step %s", self.execution_id, stopped.step_name)
            self.backend.set_execution_status(self.execution_arn, "Stopped")
        except Exception as err:  # a bug in this service must still end the execution, with its cause
            logger.exception("execution %s crashed", self.execution_id)
            self.backend.set_execution_status(self.execution_arn, "Failed", f"InternalServerError: {err}")
        else:
            self.backend.set_execution_status(self.execution_arn, status)
        finally:
            with self.backend.lock:
                self.backend.stop_signals.pop(self.execution_arn, None)

    def _walk(self) -> str:
        outcomes: dict[str, bool] = {}
        skipped: set[str] = set()
        for step in self.definition.order():
            if self.stop.is_set():
                return "Stopped"
            off_branch = step.condition is not None and outcomes.get(step.condition) is not step.branch
            if off_branch or step.depends_on & skipped:
                skipped.add(step.name)
                continue
            properties = self._run_step(step)
            self.evaluator.scope.properties[step.name] = properties
            if step.type == "Condition":
                outcomes[step.name] = bool(properties["Outcome"])
        return "Succeeded"

    def _run_step(self, step: StepSpec) -> Record:
        backend, arn = self.backend, self.execution_arn
        backend.start_step(arn, step.name, step.body.get("DisplayName"), step.body.get("Description"))
        try:
            executor_class = STEP_EXECUTORS.get(step.type)
            if executor_class is None:
                raise StepFailed(step.name, f"step type '{step.type}' is not supported by the local SageMaker service")
            executor = executor_class(self.context, step)
            arguments = executor.arguments()
            cache_key = _cache_key(step, executor.cache_source(arguments))
            cached = self._cache_hit(step, cache_key)
            if cached is not None:
                return cached
            result = executor.execute(arguments)
        except EvaluationError as err:
            failed = StepFailed(step.name, str(err))
        except StepFailed as err:
            failed = err
        except StepStopped:
            backend.set_step_status(arn, step.name, "Stopped")
            raise
        else:
            backend.update_step(arn, step.name, Metadata=result.metadata, _properties=result.properties,
                                _cache_key=cache_key)
            backend.set_step_status(arn, step.name, "Succeeded")
            return result.properties
        backend.set_step_status(arn, step.name, "Failed", failed.reason)
        raise failed

    def _cache_hit(self, step: StepSpec, cache_key: str) -> Record | None:
        config = step.body.get("CacheConfig") or {}
        if not config.get("Enabled"):
            return None
        not_before = now() - expire_after_seconds(config.get("ExpireAfter"))
        hit = self.backend.find_cached_step(self.pipeline_arn, step.name, cache_key, not_before)
        if hit is None:
            return None
        source_arn, source = hit
        logger.info("execution %s: step %s is a cache hit of %s", self.execution_id, step.name, source_arn)
        self.backend.update_step(self.execution_arn, step.name, Metadata=source["Metadata"],
                                 CacheHitResult={"SourcePipelineExecutionArn": source_arn},
                                 _properties=source["_properties"], _cache_key=cache_key)
        self.backend.set_step_status(self.execution_arn, step.name, "Succeeded")
        return source["_properties"]


def _cache_key(step: StepSpec, source: object) -> str:
    document = json.dumps({"Type": step.type, "Name": step.name, "Arguments": source}, sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()
