"""Settings of the template that moto's CloudFormation does not apply, checked on the template."""
from __future__ import annotations

from typing import Any

import pytest


def _of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == resource_type}


def test_buckets_are_versioned_and_block_public_access(template: dict[str, Any]) -> None:
    buckets = _of_type(template, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for props in buckets.values():
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert all(props["PublicAccessBlockConfiguration"].values())


def test_incoming_recordings_expire(template: dict[str, Any]) -> None:
    rules = template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(rule.get("Prefix") == "inference/incoming/" and rule["ExpirationInDays"] > 0 for rule in rules)


def test_every_bucket_denies_plain_http(template: dict[str, Any]) -> None:
    buckets = set(_of_type(template, "AWS::S3::Bucket"))
    policies = _of_type(template, "AWS::S3::BucketPolicy").values()
    covered = {p["Bucket"]["Ref"] for p in policies if any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in p["PolicyDocument"]["Statement"] if "Condition" in s
    )}
    assert covered == buckets


def test_stream_and_tables_use_the_customer_key(template: dict[str, Any]) -> None:
    (stream,) = _of_type(template, "AWS::Kinesis::Stream").values()
    assert stream["StreamEncryption"]["EncryptionType"] == "KMS"
    for name, table in _of_type(template, "AWS::DynamoDB::Table").items():
        assert table["SSESpecification"]["SSEType"] == "KMS", name
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name


@pytest.mark.parametrize("queue_type", ["AWS::SQS::Queue", "AWS::SNS::Topic"])
def test_queues_and_topics_are_encrypted(template: dict[str, Any], queue_type: str) -> None:
    for name, props in _of_type(template, queue_type).items():
        assert props["KmsMasterKeyId"] == {"Ref": "DataKey"}, name


def test_functions_have_dead_letters_async_destinations_and_own_roles(template: dict[str, Any]) -> None:
    functions = _of_type(template, "AWS::Lambda::Function")
    assert len(functions) == 4
    roles = [props["Role"]["Fn::GetAtt"][0] for props in functions.values()]
    assert len(set(roles)) == len(roles), "each function has its own role"
    for name, props in functions.items():
        assert props["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][1] == "Arn", name
        assert props["ReservedConcurrentExecutions"] >= 1, name
        assert "LogGroup" in props["LoggingConfig"], name
    invoke_configs = {c["FunctionName"]["Ref"] for c in _of_type(template, "AWS::Lambda::EventInvokeConfig").values()}
    assert invoke_configs == {"TriggerFunction", "InferenceFunction"}


def test_log_groups_are_retained_and_encrypted(template: dict[str, Any]) -> None:
    for name, props in _of_type(template, "AWS::Logs::LogGroup").items():
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert "KmsKeyId" in props, name


def test_predictions_glue_table_projects_date_partitions(template: dict[str, Any]) -> None:
    (table,) = _of_type(template, "AWS::Glue::Table").values()
    parameters = table["TableInput"]["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date"
    assert [k["Name"] for k in table["TableInput"]["PartitionKeys"]] == ["dt"]


def test_quicksight_and_autoscaling_are_optional(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for name in ("QuickSightDataSource", "QuickSightDataSet"):
        assert resources[name]["Condition"] == "HasQuickSight"
    for name in ("EndpointScalableTarget", "EndpointScalingPolicy"):
        assert resources[name]["Condition"] == "AutoScaleEndpoint"
    assert template["Parameters"]["QuickSightPrincipalArn"]["Default"] == ""


def test_alarms_cover_errors_dead_letters_latency_and_pipeline(template: dict[str, Any]) -> None:
    metrics = {(p["Namespace"], p["MetricName"]) for p in _of_type(template, "AWS::CloudWatch::Alarm").values()}
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SageMaker", "ModelLatency"),
        ("AWS/Sagemaker/ModelBuildingPipeline", "ExecutionFailed"),
    } <= metrics
