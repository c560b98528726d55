"""Model registry: package groups and versioned packages, approval updates, metrics kept."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

GROUP = "LungModels"
SPEC = {"Containers": [{"Image": "local/tfs", "ModelDataUrl": "s3://b/models/1/model.tar.gz"}],
        "SupportedContentTypes": ["audio/wav"], "SupportedResponseMIMETypes": ["application/json"]}
METRICS = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/eval/evaluation.json"}}}


@pytest.fixture
def group(sagemaker) -> str:
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="lungs")
    return GROUP


def _register(sagemaker, status: str = "PendingManualApproval") -> str:
    return sagemaker.create_model_package(ModelPackageGroupName=GROUP, InferenceSpecification=SPEC,
                                          ModelApprovalStatus=status, ModelMetrics=METRICS)["ModelPackageArn"]


def test_create_model_package_group_then_describe(sagemaker, group):
    described = sagemaker.describe_model_package_group(ModelPackageGroupName=group)

    assert described["ModelPackageGroupArn"] == "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/lungmodels"
    assert described["ModelPackageGroupName"] == GROUP
    assert described["ModelPackageGroupStatus"] == "Completed"
    assert described["ModelPackageGroupDescription"] == "lungs"


def test_create_model_package_group_duplicate_is_validation_exception(sagemaker, group):
    with pytest.raises(ClientError) as err:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "already exists" in err.value.response["Error"]["Message"]


def test_describe_model_package_group_unknown_is_resource_not_found(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.describe_model_package_group(ModelPackageGroupName="Nope")

    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_list_model_package_groups_filters_by_name(sagemaker, group):
    sagemaker.create_model_package_group(ModelPackageGroupName="Other")

    listed = sagemaker.list_model_package_groups(NameContains="lung")["ModelPackageGroupSummaryList"]

    assert [g["ModelPackageGroupName"] for g in listed] == [GROUP]


def test_create_model_package_versions_count_up_per_group(sagemaker, group):
    first, second = _register(sagemaker), _register(sagemaker)

    assert first.endswith("model-package/lungmodels/1")
    assert second.endswith("model-package/lungmodels/2")
    described = sagemaker.describe_model_package(ModelPackageName=second)
    assert described["ModelPackageVersion"] == 2
    assert described["ModelPackageGroupName"] == GROUP
    assert described["ModelPackageStatus"] == "Completed"
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["InferenceSpecification"] == SPEC
    assert described["ModelMetrics"] == METRICS


def test_create_model_package_unknown_group_is_resource_not_found(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.create_model_package(ModelPackageGroupName="Nope", InferenceSpecification=SPEC)

    assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    assert "Nope" in err.value.response["Error"]["Message"]


def test_create_model_package_bad_approval_status_is_validation_exception(sagemaker, group):
    with pytest.raises(ClientError) as err:
        sagemaker.create_model_package(ModelPackageGroupName=group, InferenceSpecification=SPEC,
                                       ModelApprovalStatus="Maybe")

    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_update_model_package_approves_and_keeps_description(sagemaker, group):
    arn = _register(sagemaker)

    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                   ApprovalDescription="accuracy 0.81 >= 0.7")

    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "accuracy 0.81 >= 0.7"


def test_list_model_packages_filters_by_approval_newest_first(sagemaker, group):
    approved_1 = _register(sagemaker, "Approved")
    _register(sagemaker, "Rejected")
    approved_3 = _register(sagemaker, "Approved")

    listed = sagemaker.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved",
                                           SortBy="CreationTime", SortOrder="Descending")["ModelPackageSummaryList"]

    assert [p["ModelPackageArn"] for p in listed] == [approved_3, approved_1]
    assert [p["ModelPackageVersion"] for p in listed] == [3, 1]


def test_describe_model_package_unknown_is_resource_not_found(sagemaker, group):
    with pytest.raises(ClientError) as err:
        sagemaker.describe_model_package(
            ModelPackageName="arn:aws:sagemaker:us-east-1:123456789012:model-package/lungmodels/9")

    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_delete_model_package_group_holding_packages_is_refused(sagemaker, group):
    _register(sagemaker)

    with pytest.raises(ClientError) as err:
        sagemaker.delete_model_package_group(ModelPackageGroupName=group)

    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert sagemaker.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupName"] == group
