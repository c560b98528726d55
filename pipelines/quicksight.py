"""QuickSight on AWS: the S3 manifests its datasets read, and the dashboard definition.

Two datasets feed the dashboard: `predictions` (the JSON lines under predictions/, through the
S3 manifest or the Athena table of the stack) and `models` (one line per registered model version
with its test accuracy and the gate, exported from the registry by `samay quicksight manifest`,
since QuickSight cannot read the registry itself).
"""
from __future__ import annotations

import json
from typing import Any

from lambdas.shared import aws
from lambdas.shared.config import Settings
from pipelines.dashboard import data as dashboard_data

PREDICTIONS_MANIFEST_KEY = "quicksight/manifest.json"
MODELS_MANIFEST_KEY = "quicksight/models-manifest.json"
MODELS_EXPORT_KEY = "analytics/models/models.jsonl"


def manifest(bucket: str, prefix: str) -> dict[str, Any]:
    """A QuickSight S3 manifest (fileLocations + globalUploadSettings) over JSON files under a prefix."""
    return {
        "fileLocations": [{"URIPrefixes": [f"s3://{bucket}/{prefix}"]}],
        "globalUploadSettings": {"format": "JSON"},
    }


def model_rows(settings: Settings) -> list[dict[str, Any]]:
    collected = dashboard_data.collect(settings)
    return [
        {
            "model_version": str(m.version),
            "approval": m.approval,
            "accuracy": m.accuracy,
            "baseline_accuracy": m.baseline,
            "threshold": collected.threshold,
            "in_service": collected.in_service == m.arn,
            "created_at": m.created_at,
            "model_package_arn": m.arn,
        }
        for m in collected.models
    ]


def write_manifests(settings: Settings) -> dict[str, str]:
    """Write both manifests and the models export to the bucket; returns {name: s3 uri}."""
    s3 = aws.client("s3")
    rows = model_rows(settings)
    s3.put_object(
        Bucket=settings.bucket,
        Key=MODELS_EXPORT_KEY,
        Body="".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode(),
        ContentType="application/x-ndjson",
    )
    written = {}
    for name, key, prefix in (
        ("predictions", PREDICTIONS_MANIFEST_KEY, "predictions/"),
        ("models", MODELS_MANIFEST_KEY, "analytics/models/"),
    ):
        body = json.dumps(manifest(settings.bucket, prefix), indent=2).encode()
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType="application/json")
        written[name] = f"s3://{settings.bucket}/{key}"
    return written


def _column(dataset: str, name: str) -> dict[str, str]:
    return {"DataSetIdentifier": dataset, "ColumnName": name}


def _category(field_id: str, dataset: str, name: str) -> dict[str, Any]:
    return {"CategoricalDimensionField": {"FieldId": field_id, "Column": _column(dataset, name)}}


def _count(field_id: str, dataset: str, name: str) -> dict[str, Any]:
    return {"CategoricalMeasureField": {"FieldId": field_id, "Column": _column(dataset, name), "AggregationFunction": "COUNT"}}


def _number(field_id: str, dataset: str, name: str, function: str) -> dict[str, Any]:
    return {
        "NumericalMeasureField": {
            "FieldId": field_id,
            "Column": _column(dataset, name),
            "AggregationFunction": {"SimpleNumericalAggregation": function},
        }
    }


def _bar(visual_id: str, title: str, category: dict, values: list[dict], colors: list[dict] | None = None, **extra: Any) -> dict:
    wells: dict[str, Any] = {"Category": [category], "Values": values}
    if colors:
        wells["Colors"] = colors
    configuration = {"FieldWells": {"BarChartAggregatedFieldWells": wells}, "BarsArrangement": "STACKED", **extra}
    return {
        "BarChartVisual": {
            "VisualId": visual_id,
            "Title": {"Visibility": "VISIBLE", "FormatText": {"PlainText": title}},
            "ChartConfiguration": configuration,
        }
    }


def dashboard_definition(predictions_dataset_arn: str, models_dataset_arn: str, threshold: float = 0.7) -> dict[str, Any]:
    """The `Definition` of CreateDashboard: the same six views as `samay dashboard`."""
    p, m = "predictions", "models"
    label = _category("label", p, "predicted_label")
    visuals = [
        {
            "LineChartVisual": {
                "VisualId": "predictions-over-time",
                "Title": {"Visibility": "VISIBLE", "FormatText": {"PlainText": "Predictions over time"}},
                "ChartConfiguration": {
                    "FieldWells": {
                        "LineChartAggregatedFieldWells": {
                            "Category": [{"DateDimensionField": {"FieldId": "day", "Column": _column(p, "created_at"), "DateGranularity": "DAY"}}],
                            "Values": [_count("n-over-time", p, "recording_id")],
                            "Colors": [_category("status-over-time", p, "status")],
                        }
                    }
                },
            }
        },
        _bar("class-distribution", "Predicted class distribution", label, [_count("n-class", p, "recording_id")]),
        _bar("by-device", "Predictions by device", _category("device", p, "device"), [_count("n-device", p, "recording_id")], [_category("label-device", p, "predicted_label")]),
        _bar("by-location", "Predictions by location", _category("location", p, "location"), [_count("n-location", p, "recording_id")], [_category("label-location", p, "predicted_label")]),
        _bar("failures", "Outcomes (OK / FAILED) by model version", _category("version-outcome", p, "model_version"), [_count("n-outcome", p, "recording_id")], [_category("status", p, "status")]),
        _bar(
            "accuracy-per-version",
            "Model accuracy per version vs the gate",
            _category("model-version", m, "model_version"),
            [_number("accuracy", m, "accuracy", "MAX"), _number("baseline", m, "baseline_accuracy", "MAX")],
            ReferenceLines=[{"Status": "ENABLED", "DataConfiguration": {"StaticConfiguration": {"Value": threshold}}}],
        ),
        {
            "KPIVisual": {
                "VisualId": "model-in-service",
                "Title": {"Visibility": "VISIBLE", "FormatText": {"PlainText": "Latest model version scoring"}},
                "ChartConfiguration": {"FieldWells": {"Values": [_number("latest-version", p, "model_version_number", "MAX")]}},
            }
        },
    ]
    return {
        "DataSetIdentifierDeclarations": [
            {"Identifier": p, "DataSetArn": predictions_dataset_arn},
            {"Identifier": m, "DataSetArn": models_dataset_arn},
        ],
        "CalculatedFields": [
            {"DataSetIdentifier": p, "Name": "model_version_number", "Expression": "parseInt({model_version})"}
        ],
        "Sheets": [{"SheetId": "overview", "Name": "Overview", "Visuals": visuals}],
    }


def create_dashboard_request(account_id: str, predictions_dataset_arn: str, models_dataset_arn: str, principal_arn: str) -> dict[str, Any]:
    """Parameters of quicksight.create_dashboard for this account (validated by botocore's model in tests)."""
    return {
        "AwsAccountId": account_id,
        "DashboardId": "samay-lung-sound",
        "Name": "Samay lung-sound predictions",
        "Definition": dashboard_definition(predictions_dataset_arn, models_dataset_arn),
        "Permissions": [
            {
                "Principal": principal_arn,
                "Actions": [
                    "quicksight:DescribeDashboard",
                    "quicksight:ListDashboardVersions",
                    "quicksight:QueryDashboard",
                    "quicksight:UpdateDashboard",
                    "quicksight:DeleteDashboard",
                    "quicksight:UpdateDashboardPermissions",
                    "quicksight:DescribeDashboardPermissions",
                    "quicksight:UpdateDashboardPublishedVersion",
                ],
            }
        ],
    }
