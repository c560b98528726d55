"""samay-inference: S3 ObjectCreated under inference/incoming/ -> endpoint -> DynamoDB + S3 predictions.

An S3 notification may carry several records; each is processed on its own, so a corrupt file or
a storage hiccup on one never sinks the others. Records whose storage failed transiently are
retried by raising once all others are done (every write is conditional, so the records that
succeeded are no-ops on the retry). No TensorFlow, librosa or numpy here: cold starts stay short.
"""
from __future__ import annotations

from collections import Counter

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.inference.model_info import ModelPackageLookup
from lambdas.inference.objects import IncomingObject
from lambdas.inference.process import Outcome, Processor, Result
from lambdas.shared.config import Settings
from lambdas.shared.scoring import RetryPolicy

logger = Logger()
metrics = Metrics(namespace="Samay")
MODELS = ModelPackageLookup()


class RecordsNotProcessed(RuntimeError):
    """Some records hit a transient error; raising makes Lambda retry the event (then its on-failure destination)."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, int]:
    return handle(event, Processor(Settings.from_env(), MODELS, RetryPolicy.from_env()))


def _log_result(obj: IncomingObject, result: Result) -> None:
    """One structured line per record (ids and reasons only: no patient metadata, no audio)."""
    prediction = result.prediction
    fields = {"key": obj.key, "outcome": result.outcome.value}
    if prediction is not None:
        fields |= {"recording_id": prediction.recording_id, "model_version": prediction.model_version, "status": prediction.status}
    if result.outcome is Outcome.FAILED and prediction is not None:
        logger.error("recording not scored", extra=fields | {"reason": prediction.error_reason, "error": prediction.error})
        return
    logger.info("recording processed", extra=fields)
    if result.outcome is Outcome.OK and prediction is not None and prediction.latency_ms is not None:
        metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=prediction.latency_ms)


def handle(event: S3Event, processor: Processor) -> dict[str, int]:
    """Process every record; return the count per outcome, raise after the loop if any record must be retried."""
    outcomes: Counter[str] = Counter()
    for record in event.records:
        try:
            obj = IncomingObject.from_record(record)
            result = processor.process(obj)
        except Exception as err:  # noqa: BLE001 (one record's fault must not stop the others; re-raised below)
            key = record.get("s3", {}).get("object", {}).get("key")
            logger.exception("record will be retried", extra={"key": key, "error_type": type(err).__name__})
            outcomes["RETRY"] += 1
            continue
        outcomes[result.outcome.value] += 1
        _log_result(obj, result)
    for outcome in ("OK", "FAILED", "DUPLICATE", "RETRY"):
        metrics.add_metric(name=f"Recordings{outcome.title()}", unit=MetricUnit.Count, value=outcomes[outcome])
    logger.info("event processed", extra={"outcomes": dict(outcomes)})
    if outcomes["RETRY"]:
        raise RecordsNotProcessed(f"{outcomes['RETRY']} of {sum(outcomes.values())} records hit a transient error")
    return dict(outcomes)
