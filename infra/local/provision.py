"""Create, idempotently, the resources the AWS stack would create, in the local cloud.

Each resource has its own small `ensure_*` function taking a `Clients`, so a later switch of part of
this to deploying `infra/template.yaml` into moto's CloudFormation replaces functions one by one.
Where AWS wires a service straight to a Lambda (rule target, S3 notification), the local wiring
targets an SQS queue instead: moto matches rule patterns and S3 filters and delivers to SQS, and the
event router (router.py) polls those queues and invokes the handlers.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdas.shared import config

logger = logging.getLogger(__name__)

# Local-only plumbing: on AWS these hops are the rule's Lambda target and the bucket's Lambda
# notification (with Lambda's on-failure destinations); locally they are queues the router drains.
TRIGGER_QUEUE = "samay-trigger-events"
INFERENCE_QUEUE = "samay-inference-events"
TRIGGER_DLQ = "samay-trigger-dlq"
INFERENCE_DLQ = "samay-inference-dlq"
INFERENCE_PREFIX = "inference/incoming/"
INFERENCE_SUFFIX = ".wav"
STREAM_SHARDS = 2
PREDICTIONS_GSI = "patient_id-created_at"
INGEST_EVENT_PATTERN = {"source": [config.PIPE_EVENT_SOURCE], "detail-type": [config.PIPE_DETAIL_TYPE]}
ROLE_ARN = f"arn:aws:iam::{config.LOCAL_ACCOUNT_ID}:role/{config.SAGEMAKER_ROLE_NAME}"

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)


class Clients:
    """boto3 clients bound to the local endpoints of an env mapping (the `samay local env` values).

    Explicit endpoints rather than os.environ, so provisioning works from a process whose own
    environment points elsewhere.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        self._cache: dict[str, Any] = {}

    def endpoint(self, service: str) -> str:
        specific = f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"
        return self.env.get(specific, self.env["AWS_ENDPOINT_URL"])

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self._session.client(service, endpoint_url=self.endpoint(service), config=_CONFIG)
        return self._cache[service]

    @property
    def bucket(self) -> str:
        return self.env.get("SAMAY_BUCKET", config.LOCAL_BUCKET)


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


def queue_url(clients: Clients, name: str) -> str:
    return clients("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def queue_arn(name: str, region: str = config.DEFAULT_REGION) -> str:
    return f"arn:aws:sqs:{region}:{config.LOCAL_ACCOUNT_ID}:{name}"


def ensure_queues(clients: Clients) -> None:
    """The rule-target and notification queues and their dead-letter queues (create is idempotent)."""
    for name in (TRIGGER_QUEUE, INFERENCE_QUEUE, TRIGGER_DLQ, INFERENCE_DLQ):
        clients("sqs").create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "1209600"})


def ensure_bucket(clients: Clients) -> None:
    s3 = clients("s3")
    try:
        s3.create_bucket(Bucket=clients.bucket)
    except ClientError as err:
        if _error_code(err) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_versioning(Bucket=clients.bucket, VersioningConfiguration={"Status": "Enabled"})


def ensure_bucket_notification(clients: Clients) -> None:
    """ObjectCreated under inference/incoming/*.wav -> the inference queue (AWS: the inference Lambda)."""
    region = clients.env["AWS_DEFAULT_REGION"]
    wanted = {
        "Id": "inference-incoming",
        "QueueArn": queue_arn(INFERENCE_QUEUE, region),
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {
            "Key": {
                "FilterRules": [
                    {"Name": "prefix", "Value": INFERENCE_PREFIX},
                    {"Name": "suffix", "Value": INFERENCE_SUFFIX},
                ]
            }
        },
    }
    s3 = clients("s3")
    current = s3.get_bucket_notification_configuration(Bucket=clients.bucket)
    if any(q.get("Id") == wanted["Id"] for q in current.get("QueueConfigurations", [])):
        return  # re-putting would make S3 (and moto) send another s3:TestEvent
    s3.put_bucket_notification_configuration(
        Bucket=clients.bucket, NotificationConfiguration={"QueueConfigurations": [wanted]}
    )


def ensure_stream(clients: Clients) -> None:
    kinesis = clients("kinesis")
    try:
        kinesis.create_stream(StreamName=config.STREAM_NAME, ShardCount=STREAM_SHARDS)
    except ClientError as err:
        if _error_code(err) != "ResourceInUseException":
            raise
    kinesis.get_waiter("stream_exists").wait(StreamName=config.STREAM_NAME, WaiterConfig={"Delay": 0.2})


def ensure_event_bus(clients: Clients) -> None:
    """Bus `samay`, rule `recording-ingested` (AWS's pattern), target: the trigger queue."""
    events = clients("events")
    try:
        events.create_event_bus(Name=config.EVENT_BUS_NAME)
    except ClientError as err:
        if _error_code(err) != "ResourceAlreadyExistsException":
            raise
    events.put_rule(
        Name=config.INGEST_RULE_NAME,
        EventBusName=config.EVENT_BUS_NAME,
        EventPattern=json.dumps(INGEST_EVENT_PATTERN),
        State="ENABLED",
    )
    events.put_targets(
        Rule=config.INGEST_RULE_NAME,
        EventBusName=config.EVENT_BUS_NAME,
        Targets=[{"Id": "trigger", "Arn": queue_arn(TRIGGER_QUEUE, clients.env["AWS_DEFAULT_REGION"])}],
    )


def _ensure_table(clients: Clients, name: str, spec: dict[str, Any]) -> None:
    try:
        clients("dynamodb").create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
    except ClientError as err:
        if _error_code(err) != "ResourceInUseException":
            raise


def ensure_predictions_table(clients: Clients) -> None:
    _ensure_table(
        clients,
        config.PREDICTIONS_TABLE,
        {
            "KeySchema": [
                {"AttributeName": "recording_id", "KeyType": "HASH"},
                {"AttributeName": "model_version", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("recording_id", "model_version", "patient_id", "created_at")
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": PREDICTIONS_GSI,
                    "KeySchema": [
                        {"AttributeName": "patient_id", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        },
    )


def ensure_idempotency_table(clients: Clients) -> None:
    """The Powertools idempotency table shape: key `id`, TTL on `expiration`."""
    _ensure_table(
        clients,
        config.IDEMPOTENCY_TABLE,
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        },
    )
    clients("dynamodb").update_time_to_live(
        TableName=config.IDEMPOTENCY_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )


def ensure_ingest_state_table(clients: Clients) -> None:
    _ensure_table(
        clients,
        config.INGEST_STATE_TABLE,
        {
            "KeySchema": [{"AttributeName": "dataset", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "dataset", "AttributeType": "S"}],
        },
    )


def ensure_sagemaker_role(clients: Clients) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        clients("iam").create_role(RoleName=config.SAGEMAKER_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    except ClientError as err:
        if _error_code(err) != "EntityAlreadyExists":
            raise


def ensure_model_package_group(clients: Clients) -> None:
    """Created through the local SageMaker service (it owns the model registry)."""
    sagemaker = clients("sagemaker")
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=config.MODEL_PACKAGE_GROUP)
        return
    except ClientError as err:
        if _error_code(err) not in ("ValidationException", "ResourceNotFound"):
            raise
    sagemaker.create_model_package_group(
        ModelPackageGroupName=config.MODEL_PACKAGE_GROUP,
        ModelPackageGroupDescription="Lung-sound classifiers registered by PredictionsSamayPipeline",
    )


# The order matters: queues before the wiring that targets them; the bucket notification last
# among moto resources so objects restored from a snapshot (restored before provisioning) do not
# fire it again.
MOTO_STEPS: list[tuple[str, Callable[[Clients], None]]] = [
    ("SQS queues (rule target, S3 notification, DLQs)", ensure_queues),
    (f"S3 bucket {config.LOCAL_BUCKET} (versioned)", ensure_bucket),
    (f"Kinesis stream {config.STREAM_NAME}", ensure_stream),
    (f"EventBridge bus {config.EVENT_BUS_NAME} + rule {config.INGEST_RULE_NAME}", ensure_event_bus),
    (f"DynamoDB {config.PREDICTIONS_TABLE} (+ GSI {PREDICTIONS_GSI})", ensure_predictions_table),
    (f"DynamoDB {config.IDEMPOTENCY_TABLE} (TTL expiration)", ensure_idempotency_table),
    (f"DynamoDB {config.INGEST_STATE_TABLE}", ensure_ingest_state_table),
    (f"IAM role {config.SAGEMAKER_ROLE_NAME}", ensure_sagemaker_role),
    (f"S3 notification {INFERENCE_PREFIX}*{INFERENCE_SUFFIX} -> {INFERENCE_QUEUE}", ensure_bucket_notification),
]
SAGEMAKER_STEPS: list[tuple[str, Callable[[Clients], None]]] = [
    (f"Model package group {config.MODEL_PACKAGE_GROUP}", ensure_model_package_group),
]


def provision(clients: Clients, steps: list[tuple[str, Callable[[Clients], None]]] | None = None) -> list[str]:
    """Run the given steps (default: all) and return their descriptions, in order."""
    done = []
    for description, step in steps if steps is not None else MOTO_STEPS + SAGEMAKER_STEPS:
        step(clients)
        logger.info("provisioned %s", description)
        done.append(description)
    return done
