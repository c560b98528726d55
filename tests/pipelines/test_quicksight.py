"""QuickSight manifests validate against the S3 manifest format; the dashboard request against botocore."""
from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import jsonschema
import pytest
from botocore.validate import ParamValidator
from typer.testing import CliRunner

from lambdas.shared import aws
from lambdas.shared.config import Settings
from pipelines import quicksight
from pipelines.cli import app

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "infra" / "quicksight" / "manifest.schema.json").read_text())
BUCKET = "samay-qs-test"


def test_manifest_validates_and_points_at_predictions() -> None:
    document = quicksight.manifest("b", "predictions/")
    jsonschema.validate(document, SCHEMA)
    assert document["fileLocations"][0]["URIPrefixes"] == ["s3://b/predictions/"]
    assert document["globalUploadSettings"]["format"] == "JSON"


def test_schema_rejects_a_malformed_manifest() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"fileLocations": [{"URIPrefixes": ["predictions/"]}], "globalUploadSettings": {"format": "PARQUET"}}, SCHEMA)


def test_cli_writes_both_manifests_and_the_models_export(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_BUCKET", BUCKET)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    result = CliRunner().invoke(app, ["quicksight", "manifest"])
    assert result.exit_code == 0, result.output
    s3 = aws.client("s3")
    for key in (quicksight.PREDICTIONS_MANIFEST_KEY, quicksight.MODELS_MANIFEST_KEY):
        jsonschema.validate(json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()), SCHEMA)
    assert s3.get_object(Bucket=BUCKET, Key=quicksight.MODELS_EXPORT_KEY)["Body"].read() == b""  # no models yet


def test_dashboard_request_is_valid_for_create_dashboard() -> None:
    request = quicksight.create_dashboard_request(
        "123456789012",
        "arn:aws:quicksight:us-east-1:123456789012:dataset/samay-predictions",
        "arn:aws:quicksight:us-east-1:123456789012:dataset/samay-models",
        "arn:aws:quicksight:us-east-1:123456789012:user/default/analyst",
    )
    shape = botocore.session.get_session().get_service_model("quicksight").operation_model("CreateDashboard").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    visual_ids = [next(iter(v.values()))["VisualId"] for v in request["Definition"]["Sheets"][0]["Visuals"]]
    assert len(visual_ids) == len(set(visual_ids)) == 7


def test_models_rows_carry_accuracy_and_gate(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_BUCKET", BUCKET)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="eval.json", Body=json.dumps({"multiclass_classification_metrics": {"accuracy": {"value": 0.9}}, "baseline": {"accuracy": 0.4}}))
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="SamayLungSoundModels")
    sagemaker.create_model_package(
        ModelPackageGroupName="SamayLungSoundModels",
        ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "i", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}], "SupportedContentTypes": ["audio/wav"], "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/eval.json"}}},
    )
    rows = quicksight.model_rows(Settings.from_env())
    assert [(r["model_version"], r["accuracy"], r["baseline_accuracy"], r["threshold"]) for r in rows] == [("1", 0.9, 0.4, 0.7)]
