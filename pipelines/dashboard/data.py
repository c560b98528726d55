"""What the dashboard shows, read back from the system's own state.

Predictions come from the S3 JSON lines (the same objects QuickSight reads through Athena); model
versions and their accuracy from the model registry and the evaluation.json attached to each
package; the version in service from the endpoint; ingestion problems from the quarantine lines.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from lambdas.shared import aws
from lambdas.shared.config import Settings

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.7


@dataclass(frozen=True)
class ModelVersion:
    version: int
    arn: str
    approval: str
    created_at: str
    accuracy: float | None
    baseline: float | None


@dataclass
class DashboardData:
    predictions: list[dict[str, Any]] = field(default_factory=list)
    models: list[ModelVersion] = field(default_factory=list)
    in_service: str | None = None
    endpoint_status: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    quarantine_reasons: Counter = field(default_factory=Counter)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [p for p in self.predictions if p.get("status") == "FAILED"]


def _read_json_lines(bucket: str, prefix: str) -> list[dict[str, Any]]:
    s3 = aws.client("s3")
    rows: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            for line in body.splitlines():
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        logger.warning("skipping a line that is not JSON in %s", obj["Key"])
    return rows


def _read_s3_json(uri: str) -> dict[str, Any] | None:
    parsed = urlparse(uri)
    try:
        body = aws.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        return json.loads(body)
    except (ClientError, json.JSONDecodeError) as err:
        logger.warning("cannot read %s: %s", uri, err)
        return None


def _model_versions(group: str) -> list[ModelVersion]:
    sagemaker = aws.client("sagemaker")
    try:
        summaries = sagemaker.list_model_packages(ModelPackageGroupName=group, MaxResults=100)["ModelPackageSummaryList"]
    except ClientError as err:
        logger.warning("model registry unavailable: %s", err)
        return []
    versions = []
    for summary in summaries:
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        stats_uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        report = _read_s3_json(stats_uri) if stats_uri else None
        metrics = (report or {}).get("multiclass_classification_metrics", {})
        versions.append(
            ModelVersion(
                version=int(package.get("ModelPackageVersion", 0)),
                arn=package["ModelPackageArn"],
                approval=package.get("ModelApprovalStatus", "Unknown"),
                created_at=str(package.get("CreationTime", "")),
                accuracy=metrics.get("accuracy", {}).get("value"),
                baseline=(report or {}).get("baseline", {}).get("accuracy"),
            )
        )
    return sorted(versions, key=lambda v: v.version)


def _in_service(endpoint: str) -> tuple[str | None, str | None]:
    """(model package ARN or model name in service, endpoint status)."""
    sagemaker = aws.client("sagemaker")
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return None, None
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model_name = config["ProductionVariants"][0]["ModelName"]
    model = sagemaker.describe_model(ModelName=model_name)
    containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
    return containers[0].get("ModelPackageName", model_name), described["EndpointStatus"]


def _threshold(pipeline: str) -> float:
    """The gate's default AccuracyThreshold, read from the pipeline definition in service."""
    try:
        definition = json.loads(aws.client("sagemaker").describe_pipeline(PipelineName=pipeline)["PipelineDefinition"])
    except ClientError:
        return DEFAULT_THRESHOLD
    for parameter in definition.get("Parameters", []):
        if parameter["Name"] == "AccuracyThreshold":
            return float(parameter.get("DefaultValue", DEFAULT_THRESHOLD))
    return DEFAULT_THRESHOLD


def collect(settings: Settings | None = None) -> DashboardData:
    settings = settings or Settings.from_env()
    in_service, status = _in_service(settings.endpoint_name)
    return DashboardData(
        predictions=_read_json_lines(settings.bucket, "predictions/"),
        models=_model_versions(settings.model_package_group),
        in_service=in_service,
        endpoint_status=status,
        threshold=_threshold(settings.pipeline_name),
        quarantine_reasons=Counter(row.get("reason", "unknown") for row in _read_json_lines(settings.bucket, "quarantine/")),
    )
