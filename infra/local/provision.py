"""Create the local cloud's resources: the AWS stack from `infra/template.yaml`, then the local wiring.

Three phases, so the local cloud stays in step with what AWS gets:

1. STACK_STEPS: the template itself is deployed into moto's CloudFormation as stack `samay`
   (DataBucketName = the local bucket; the Lambda code zip in a local code bucket). moto creates
   the types it supports (S3, Kinesis, DynamoDB, EventBridge bus/rule/archive, Lambda, IAM, SQS,
   SNS, KMS, logs) and passes over the rest (Pipes, Glue, QuickSight, API Gateway v2, SageMaker,
   auto-scaling, alarms).
2. LOCAL_STEPS, by boto3, for what moto's CloudFormation drops or cannot run locally:
   - the template's settings that moto's CloudFormation does not apply (bucket versioning and
     public access block, table TTL and point-in-time recovery), read from the template;
   - the event hops AWS wires straight to a Lambda (rule target, S3 notification) point at SQS
     queues instead: moto matches rule patterns and S3 filters and delivers to SQS, and the event
     router (router.py) drains them into the handlers. moto would not invoke a Lambda rule target
     at all, and would invoke a Lambda notification through Docker.
   The snapshot (snapshot.py) is restored between phases 1 and 2: after the stack, so CloudFormation
   never meets a bucket or table that already exists; before the notification, so restored uploads
   under inference/incoming/ do not fire it again.
3. SAGEMAKER_STEPS: the model package group, in the local SageMaker service (which owns the
   registry; moto's CloudFormation has no AWS::SageMaker::ModelPackageGroup).

An existing stack is left alone when its template and parameters are the current ones, and updated
otherwise; moto's stack updates handle property changes, and a change they cannot make is reported
with the way out (`samay local down && samay local up`: a fresh moto creates the stack anew and the
snapshot brings the data back).
"""
from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

import lambdas
from lambdas.shared import config

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
STACK_NAME = "samay"
CODE_BUCKET = "samay-local-lambda-code"
CODE_KEY = "lambdas.zip"
# Local-only plumbing: on AWS these hops are the rule's Lambda target and the bucket's Lambda
# notification; locally they are queues the router drains. The DLQs are the template's.
TRIGGER_QUEUE = "samay-trigger-events"
INFERENCE_QUEUE = "samay-inference-events"
TRIGGER_DLQ = "samay-trigger-dlq"
INFERENCE_DLQ = "samay-inference-dlq"
TRIGGER_TARGET_ID = "trigger"  # the template's target id: the local target takes its place
NOTIFICATION_ID = "inference-incoming"
INFERENCE_PREFIX = "inference/incoming/"
INFERENCE_SUFFIX = ".wav"
PREDICTIONS_GSI = "patient_id-created_at"
INGEST_EVENT_PATTERN = {"source": [config.PIPE_EVENT_SOURCE], "detail-type": [config.PIPE_DETAIL_TYPE]}
ROLE_ARN = f"arn:aws:iam::{config.LOCAL_ACCOUNT_ID}:role/{config.SAGEMAKER_ROLE_NAME}"

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
_WAY_OUT = "`samay local down && samay local up` creates the stack anew in a fresh moto and keeps the data"
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so the same code gives the same zip


class ProvisionError(RuntimeError):
    """The local resources could not be created; the message names the resource and what to do."""


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

    @property
    def region(self) -> str:
        return self.env["AWS_DEFAULT_REGION"]


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


def queue_url(clients: Clients, name: str) -> str:
    return clients("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def queue_arn(name: str, region: str = config.DEFAULT_REGION) -> str:
    return f"arn:aws:sqs:{region}:{config.LOCAL_ACCOUNT_ID}:{name}"


# --- the template ---------------------------------------------------------------------------------

class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !Sub, ...) as {"Fn::...": value} mappings."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def template_resources() -> dict[str, dict[str, Any]]:
    """The template's Resources section, by logical id."""
    return yaml.load(TEMPLATE.read_text(), Loader=_TemplateLoader)["Resources"]  # noqa: S506 (SafeLoader subclass)


def lambda_code_zip() -> bytes:
    """The `lambdas/` package as a zip, byte-identical for identical code.

    The stack's functions need a code object to exist; they never run in moto (the router calls
    the handlers from this checkout), so the zip holds only the package's own sources.
    """
    root = Path(lambdas.__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            info = zipfile.ZipInfo(str(Path("lambdas") / path.relative_to(root)), date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def stack_parameters(clients: Clients) -> list[dict[str, str]]:
    values = {"LambdaCodeBucket": CODE_BUCKET, "LambdaCodeKey": CODE_KEY, "DataBucketName": clients.bucket}
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def _upload_code(clients: Clients) -> None:
    s3 = clients("s3")
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except ClientError as err:
        if _error_code(err) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=lambda_code_zip())


def _remove_code(clients: Clients) -> None:
    """Lambda keeps its own copy of the code once a function exists; the zip would only be a stale
    copy in the snapshot. The next create or update uploads the current code again."""
    clients("s3").delete_object(Bucket=CODE_BUCKET, Key=CODE_KEY)


def _describe_stack(clients: Clients) -> dict[str, Any] | None:
    try:
        return clients("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    except ClientError as err:
        if _error_code(err) == "ValidationError":  # CloudFormation's "Stack with id ... does not exist"
            return None
        raise


def _stack_is_current(clients: Clients, stack: Mapping[str, Any], body: str) -> bool:
    deployed = clients("cloudformation").get_template(StackName=STACK_NAME)["TemplateBody"]
    current = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    wanted = {p["ParameterKey"]: p["ParameterValue"] for p in stack_parameters(clients)}
    return deployed == body and all(current.get(k) == v for k, v in wanted.items())


def _wait(clients: Clients, waiter: str, action: str) -> None:
    try:
        clients("cloudformation").get_waiter(waiter).wait(StackName=STACK_NAME, WaiterConfig={"Delay": 1})
    except WaiterError as err:
        events = clients("cloudformation").describe_stack_events(StackName=STACK_NAME)["StackEvents"]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
                   for e in events if e.get("ResourceStatus", "").endswith("FAILED")]
        raise ProvisionError(f"{action} of stack {STACK_NAME} from {TEMPLATE} failed: "
                             f"{'; '.join(reasons) or err}. {_WAY_OUT}") from err


def ensure_stack(clients: Clients) -> str:
    """Create stack `samay` from the template, update it when the template changed; returns what it did."""
    body = TEMPLATE.read_text()
    cloudformation = clients("cloudformation")
    stack = _describe_stack(clients)
    if stack is not None and stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE") \
            and _stack_is_current(clients, stack, body):
        return "unchanged"
    _upload_code(clients)
    arguments = {"StackName": STACK_NAME, "TemplateBody": body, "Parameters": stack_parameters(clients),
                 "Capabilities": ["CAPABILITY_NAMED_IAM"]}
    action, call, waiter = (("creation", cloudformation.create_stack, "stack_create_complete") if stack is None
                            else ("update", cloudformation.update_stack, "stack_update_complete"))
    try:
        try:
            call(**arguments)  # moto runs the resources' creation inside this call: errors come here
        except ClientError as err:
            raise ProvisionError(f"{action} of stack {STACK_NAME} from {TEMPLATE} failed: {err}. {_WAY_OUT}") from err
        _wait(clients, waiter, action)
    finally:
        _remove_code(clients)
    return "created" if stack is None else "updated"


def stack_resources(clients: Clients) -> dict[str, str]:
    """Physical ids of the resources moto created for the stack, by logical id (skipped types are absent)."""
    resources = clients("cloudformation").describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources
            if r.get("LogicalResourceId") and r.get("PhysicalResourceId")}


# --- the template's settings moto's CloudFormation does not apply -----------------------------------

def _apply_bucket_settings(clients: Clients, bucket: str, properties: Mapping[str, Any]) -> None:
    s3 = clients("s3")
    if "VersioningConfiguration" in properties:  # the inference idempotency relies on versionIds
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=properties["VersioningConfiguration"])
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"])


def _apply_table_settings(clients: Clients, table: str, properties: Mapping[str, Any]) -> None:
    dynamodb = clients("dynamodb")
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") != "ENABLED" and ttl.get("Enabled"):  # AWS refuses to re-enable it
            dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    pitr = properties.get("PointInTimeRecoverySpecification")
    if pitr:
        dynamodb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification=pitr)


_SETTINGS: dict[str, Callable[[Clients, str, Mapping[str, Any]], None]] = {
    "AWS::S3::Bucket": _apply_bucket_settings,
    "AWS::DynamoDB::Table": _apply_table_settings,
}


def ensure_template_settings(clients: Clients) -> None:
    """Bucket versioning + public access block, table TTL + point-in-time recovery, as the template says."""
    physical = stack_resources(clients)
    for logical, resource in template_resources().items():
        apply = _SETTINGS.get(resource["Type"])
        if apply is not None and logical in physical:
            apply(clients, physical[logical], resource.get("Properties", {}))


# --- the local event wiring -------------------------------------------------------------------------

def ensure_queues(clients: Clients) -> None:
    """The queues standing in for the rule's and the notification's Lambda targets (create is idempotent)."""
    for name in (TRIGGER_QUEUE, INFERENCE_QUEUE):
        clients("sqs").create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "1209600"})


def ensure_rule_target(clients: Clients) -> None:
    """Rule `recording-ingested` (pattern from the template) -> the trigger queue, in place of the Lambda."""
    events = clients("events")
    wanted = {"Id": TRIGGER_TARGET_ID, "Arn": queue_arn(TRIGGER_QUEUE, clients.region)}
    targets = events.list_targets_by_rule(Rule=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME)["Targets"]
    if [{"Id": t["Id"], "Arn": t["Arn"]} for t in targets] == [wanted]:
        return
    others = [t["Id"] for t in targets if t["Id"] != TRIGGER_TARGET_ID]
    if others:
        events.remove_targets(Rule=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME, Ids=others)
    events.put_targets(Rule=config.INGEST_RULE_NAME, EventBusName=config.EVENT_BUS_NAME, Targets=[wanted])


def ensure_bucket_notification(clients: Clients) -> None:
    """ObjectCreated under inference/incoming/*.wav -> the inference queue, and nothing else.

    The whole configuration is replaced, so no Lambda notification is left for moto to run.
    """
    wanted = {
        "Id": NOTIFICATION_ID,
        "QueueArn": queue_arn(INFERENCE_QUEUE, clients.region),
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
    current.pop("ResponseMetadata", None)
    if [q.get("Id") for q in current.get("QueueConfigurations", [])] == [NOTIFICATION_ID] \
            and set(current) == {"QueueConfigurations"}:
        return  # re-putting would make S3 (and moto) send another s3:TestEvent
    s3.put_bucket_notification_configuration(
        Bucket=clients.bucket, NotificationConfiguration={"QueueConfigurations": [wanted]}
    )


# --- the local SageMaker service ----------------------------------------------------------------------

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


Step = tuple[str, Callable[[Clients], Any]]

STACK_STEPS: list[Step] = [
    (f"CloudFormation stack {STACK_NAME} from infra/template.yaml", ensure_stack),
]
# The order matters: queues before the wiring that targets them; the notification last, so that
# objects restored from a snapshot (restored before these steps) do not fire it again.
LOCAL_STEPS: list[Step] = [
    ("template settings moto's CloudFormation skips (versioning, public access block, TTL, PITR)",
     ensure_template_settings),
    (f"SQS queues {TRIGGER_QUEUE}, {INFERENCE_QUEUE} (local rule target, S3 notification)", ensure_queues),
    (f"rule {config.INGEST_RULE_NAME} -> {TRIGGER_QUEUE} (AWS: the trigger Lambda)", ensure_rule_target),
    (f"S3 notification {INFERENCE_PREFIX}*{INFERENCE_SUFFIX} -> {INFERENCE_QUEUE} (AWS: the inference Lambda)",
     ensure_bucket_notification),
]
MOTO_STEPS: list[Step] = STACK_STEPS + LOCAL_STEPS  # everything on a fresh moto, with no snapshot in between
SAGEMAKER_STEPS: list[Step] = [
    (f"Model package group {config.MODEL_PACKAGE_GROUP}", ensure_model_package_group),
]


def provision(clients: Clients, steps: list[Step] | None = None) -> list[str]:
    """Run the given steps (default: all) and return their descriptions, in order."""
    done = []
    for description, step in steps if steps is not None else MOTO_STEPS + SAGEMAKER_STEPS:
        step(clients)
        logger.info("provisioned %s", description)
        done.append(description)
    return done
