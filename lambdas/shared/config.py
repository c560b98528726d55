"""Resource names and settings shared by every part of the system.

The names are the contract of DESIGN.md; the same values are used by the AWS stack
(`infra/template.yaml`), the local cloud and the CLI. Functions read their settings from the
environment (set by CloudFormation on AWS, by the local cloud's router locally).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

LOCAL_BUCKET = "samay-local"
STREAM_NAME = "samay-ingest"
EVENT_BUS_NAME = "samay"
INGEST_RULE_NAME = "recording-ingested"
PREDICTIONS_TABLE = "samay-predictions"
IDEMPOTENCY_TABLE = "samay-idempotency"
PIPELINE_NAME = "PredictionsSamayPipeline"
MODEL_PACKAGE_GROUP = "SamayLungSoundModels"
ENDPOINT_NAME = "samay-lung-sound"
DEFAULT_REGION = "us-east-1"
INGEST_STATE_TABLE = "samay-ingest-state"
PIPE_NAME = "samay-ingest-pipe"
PIPE_EVENT_SOURCE = f"Pipe {PIPE_NAME}"
PIPE_DETAIL_TYPE = "Event from aws:kinesis"
TRIGGER_FUNCTION = "samay-trigger"
INFERENCE_FUNCTION = "samay-inference"
DEPLOY_FUNCTION = "samay-deploy"
PREDICT_API_FUNCTION = "samay-predict-api"
LOCAL_ACCOUNT_ID = "123456789012"
SAGEMAKER_ROLE_NAME = "samay-sagemaker-execution"


@dataclass(frozen=True)
class Settings:
    """Runtime settings of a function or CLI command, read once from the environment."""

    bucket: str = LOCAL_BUCKET
    region: str = DEFAULT_REGION
    stream_name: str = STREAM_NAME
    event_bus_name: str = EVENT_BUS_NAME
    predictions_table: str = PREDICTIONS_TABLE
    idempotency_table: str = IDEMPOTENCY_TABLE
    pipeline_name: str = PIPELINE_NAME
    model_package_group: str = MODEL_PACKAGE_GROUP
    endpoint_name: str = ENDPOINT_NAME

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls(
            bucket=env.get("SAMAY_BUCKET", LOCAL_BUCKET),
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", DEFAULT_REGION)),
            stream_name=env.get("SAMAY_STREAM", STREAM_NAME),
            event_bus_name=env.get("SAMAY_EVENT_BUS", EVENT_BUS_NAME),
            predictions_table=env.get("SAMAY_PREDICTIONS_TABLE", PREDICTIONS_TABLE),
            idempotency_table=env.get("SAMAY_IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE),
            pipeline_name=env.get("SAMAY_PIPELINE_NAME", PIPELINE_NAME),
            model_package_group=env.get("SAMAY_MODEL_PACKAGE_GROUP", MODEL_PACKAGE_GROUP),
            endpoint_name=env.get("SAMAY_ENDPOINT_NAME", ENDPOINT_NAME),
        )
