"""Put an approved model package behind the endpoint: create it, or update it in place.

Every resource name is derived from the package (`samay-lung-sound-v3`, then
`samay-lung-sound-v3-m5-large-x1` for its endpoint configuration), so a repeated or concurrent
call computes the same names, finds them already there and converges on the same state: the
deployment is idempotent without a lock table. Existing resources are read before anything is
created because create calls are not uniformly conditional across SageMaker implementations.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from botocore.exceptions import ClientError

from lambdas.deploy.errors import (
    EndpointBusy,
    EndpointFailed,
    ModelNameConflict,
    ModelPackageNotApproved,
    ModelPackageNotFound,
)
from lambdas.deploy.schemas import DeployRequest, DeployResult
from lambdas.shared import aws

logger = logging.getLogger(__name__)

MAX_NAME = 63
VARIANT_NAME = "AllTraffic"
UPDATABLE = {"InService", "OutOfService"}


def deploy(request: DeployRequest) -> DeployResult:
    """Serve `request.model_package_arn` on `request.endpoint_name`; returns what was done."""
    require_approved(request.model_package_arn)
    model = model_name(request.endpoint_name, request.model_package_arn)
    config = endpoint_config_name(model, request.instance_type, request.initial_instance_count)
    ensure_model(model, request.model_package_arn, request.role_arn)
    ensure_endpoint_config(config, model, request.instance_type, request.initial_instance_count)
    action = ensure_endpoint(request.endpoint_name, config)
    logger.info("endpoint %s %s to %s", request.endpoint_name, action, config)
    return DeployResult(endpoint_name=request.endpoint_name, endpoint_config_name=config, model_name=model, action=action)


def bounded_name(name: str) -> str:
    """SageMaker names stop at 63 characters; longer ones keep a readable head and a hash tail."""
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 11].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def model_name(endpoint_name: str, package_arn: str) -> str:
    """`<endpoint>-v<version>` for a versioned package; a hash of the ARN for an unversioned one."""
    tail = package_arn.rsplit("/", 1)[-1]
    suffix = f"v{tail}" if tail.isdigit() else hashlib.sha256(package_arn.encode()).hexdigest()[:12]
    return bounded_name(f"{endpoint_name}-{suffix}")


def endpoint_config_name(model: str, instance_type: str, instance_count: int) -> str:
    """One configuration per (model, capacity): re-deploying on other instances is a new config."""
    family_size = instance_type.removeprefix("ml.").replace(".", "-")
    return bounded_name(f"{model}-{family_size}-x{instance_count}")


def require_approved(package_arn: str) -> None:
    try:
        package = aws.client("sagemaker").describe_model_package(ModelPackageName=package_arn)
    except ClientError as err:
        if _not_found(err):
            raise ModelPackageNotFound(package_arn) from err
        raise
    status = package.get("ModelApprovalStatus", "PendingManualApproval")
    if status != "Approved":
        raise ModelPackageNotApproved(package_arn, status)


def ensure_model(name: str, package_arn: str, role_arn: str) -> None:
    existing = _describe(lambda sm: sm.describe_model(ModelName=name))
    if existing is None:
        _create(
            lambda sm: sm.create_model(
                ModelName=name, PrimaryContainer={"ModelPackageName": package_arn}, ExecutionRoleArn=role_arn
            )
        )
        existing = aws.client("sagemaker").describe_model(ModelName=name)
    served = _served_package(existing)
    if served != package_arn:
        raise ModelNameConflict(name, str(served), package_arn)


def ensure_endpoint_config(name: str, model: str, instance_type: str, instance_count: int) -> None:
    if _describe(lambda sm: sm.describe_endpoint_config(EndpointConfigName=name)) is not None:
        return
    variant = {
        "VariantName": VARIANT_NAME,
        "ModelName": model,
        "InstanceType": instance_type,
        "InitialInstanceCount": instance_count,
        "InitialVariantWeight": 1.0,
    }
    _create(lambda sm: sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant]))


def ensure_endpoint(name: str, config: str) -> str:
    """Create the endpoint, or point it at `config`; "unchanged" when it already is (or is heading there)."""
    endpoint = _describe(lambda sm: sm.describe_endpoint(EndpointName=name))
    if endpoint is None:
        created = _create(lambda sm: sm.create_endpoint(EndpointName=name, EndpointConfigName=config))
        return "created" if created else "unchanged"  # else a concurrent call created it from the same names
    status = endpoint["EndpointStatus"]
    if status == "Failed":
        raise EndpointFailed(name, endpoint.get("FailureReason", "no reason given"))
    if config in _configs_of(endpoint):
        return "unchanged"
    if status not in UPDATABLE:
        raise EndpointBusy(name, status)
    aws.client("sagemaker").update_endpoint(EndpointName=name, EndpointConfigName=config)
    return "updated"


def _served_package(model: dict[str, Any]) -> str | None:
    """The package a model serves, whether described as PrimaryContainer or as Containers[0]."""
    container = model.get("PrimaryContainer") or next(iter(model.get("Containers") or []), {})
    return container.get("ModelPackageName")


def _configs_of(endpoint: dict[str, Any]) -> set[str]:
    """The configuration the endpoint runs and the one an in-flight update is moving it to."""
    pending = endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    return {name for name in (endpoint.get("EndpointConfigName"), pending) if name}


def _describe(call) -> dict[str, Any] | None:
    """The description, or None when the resource does not exist."""
    try:
        return call(aws.client("sagemaker"))
    except ClientError as err:
        if _not_found(err):
            return None
        raise


def _create(call) -> bool:
    """True when this call created the resource, False when a concurrent call already had."""
    try:
        call(aws.client("sagemaker"))
    except ClientError as err:
        if _already_exists(err):
            return False
        raise
    return True


def _not_found(err: ClientError) -> bool:
    # SageMaker reports a missing resource as a ValidationException ("Could not find ...",
    # "... does not exist"), not as ResourceNotFound.
    error = err.response.get("Error", {})
    message = error.get("Message", "").lower()
    return error.get("Code") in ("ResourceNotFound", "ValidationException") and (
        "could not find" in message or "does not exist" in message or "not found" in message
    )


def _already_exists(err: ClientError) -> bool:
    error = err.response.get("Error", {})
    return error.get("Code") == "ResourceInUse" or (
        error.get("Code") == "ValidationException" and "already exist" in error.get("Message", "").lower()
    )
