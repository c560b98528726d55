"""λ samay-trigger: one ingest record per invocation (EventBridge rule `recording-ingested`).

The handler parses the pipe's event, takes the record in once per record id (Powertools
idempotency on DynamoDB `samay-idempotency`, beside the write-once ledger/quarantine objects and
counted-once state markers), then lets the record's dataset advance: a complete commit writes the
manifest and starts PredictionsSamayPipeline. Transient failures raise (Lambda retries, then the
on-failure destination); bad records are quarantined and the handler returns normally.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared import aws
from lambdas.shared.config import TRIGGER_FUNCTION
from lambdas.trigger import completion, intake, ledger
from lambdas.trigger.errors import InvalidEvent
from lambdas.trigger.events import Delivery, event_fingerprint, parse_delivery
from lambdas.trigger.settings import TriggerSettings

IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600  # longer than Kinesis retention + EventBridge retries

logger = Logger(service=TRIGGER_FUNCTION)
logging.getLogger("lambdas")  # the plain modules log below this name, formatted like the handler
copy_config_to_registered_loggers(source_logger=logger, include={"lambdas"})
metrics = Metrics(namespace="Samay", service=TRIGGER_FUNCTION)
settings = TriggerSettings.from_env()
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=aws.client("dynamodb"))
idempotency = IdempotencyConfig(event_key_jmespath="record_id", expires_after_seconds=IDEMPOTENCY_TTL_SECONDS)


@idempotent_function(data_keyword_argument="delivery", config=idempotency, persistence_store=persistence)
def take_in_once(delivery: dict[str, Any]) -> dict[str, Any]:
    return intake.take_in(Delivery.from_payload(delivery), settings).to_dict()


def quarantine_event(event: Any, err: InvalidEvent) -> dict[str, Any]:
    """An event of the wrong shape holds no record to validate: keep it whole, with the reason."""
    event_id = event_fingerprint(event)
    ledger.write_quarantined(settings.bucket, event_id, json.dumps(event, default=str).encode(),
                             datetime.now(timezone.utc), reason="invalid_event", detail=str(err))
    logger.warning("event quarantined", extra={"record_id": event_id, "reason": "invalid_event"})
    return intake.Outcome(event_id, intake.QUARANTINE, reason="invalid_event").to_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    try:
        delivery = parse_delivery(event)
    except InvalidEvent as err:
        outcome = quarantine_event(event, err)
    else:
        outcome = take_in_once(delivery=delivery.as_payload())
    metrics.add_metric(name=f"Records_{outcome['outcome']}", unit=MetricUnit.Count, value=1)
    if outcome["dataset"]:
        outcome["execution_arn"] = completion.advance(outcome["dataset"], settings, datetime.now(timezone.utc))
        if outcome["execution_arn"]:
            metrics.add_metric(name="PipelineStarts", unit=MetricUnit.Count, value=1)
    return outcome
