"""Pipelines: create, describe, list, update, delete, and the definition checks done at upsert."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import ROLE_ARN, definition, fail_step

DEFINITION = definition(fail_step("Stop", "stopped"))


def _error(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_create_pipeline_then_describe_returns_definition(sagemaker):
    arn = sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION,
                                    PipelineDescription="d")["PipelineArn"]

    described = sagemaker.describe_pipeline(PipelineName="Demo")
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:pipeline/demo"
    assert described["PipelineArn"] == arn
    assert described["PipelineName"] == "Demo"
    assert json.loads(described["PipelineDefinition"]) == json.loads(DEFINITION)
    assert described["PipelineStatus"] == "Active"
    assert described["RoleArn"] == ROLE_ARN
    assert described["CreationTime"].year >= 2024


def test_describe_pipeline_by_arn(sagemaker):
    arn = sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)["PipelineArn"]

    assert sagemaker.describe_pipeline(PipelineName=arn)["PipelineName"] == "Demo"


def test_create_pipeline_duplicate_is_validation_exception_already_exists(sagemaker):
    sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)

    with pytest.raises(ClientError) as err:
        sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)

    code, message = _error(err)
    assert code == "ValidationException"
    assert "already exists" in message  # what the SDK's Pipeline.upsert looks for


def test_describe_pipeline_unknown_is_resource_not_found(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.describe_pipeline(PipelineName="Nope")

    assert _error(err) == ("ResourceNotFound",
                           "Pipeline 'arn:aws:sagemaker:us-east-1:123456789012:pipeline/nope' does not exist.")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"Version": "2020-12-01"}), "'Steps' list"),
        (definition({"Name": "NoType"}), "'Name' and a 'Type'"),
        (definition(fail_step("A", "x"), fail_step("A", "y")), "two steps named 'A'"),
        (definition(fail_step("A", {"Get": "Parameters.Missing"})), "undefined parameter 'Missing'"),
        (definition(fail_step("A", {"Get": "Steps.Ghost.Outcome"})), "undefined step 'Ghost'"),
        (definition({**fail_step("A", "x"), "DependsOn": ["B"]}, {**fail_step("B", "y"), "DependsOn": ["A"]}),
         "dependency cycle"),
        (definition(fail_step("A", "x"), parameters=[{"Name": "P", "Type": "Decimal"}]), "type 'Decimal'"),
    ],
)
def test_create_pipeline_bad_definition_is_validation_exception(sagemaker, text, fragment):
    with pytest.raises(ClientError) as err:
        sagemaker.create_pipeline(PipelineName="Bad", RoleArn=ROLE_ARN, PipelineDefinition=text)

    code, message = _error(err)
    assert code == "ValidationException"
    assert fragment in message
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []


def test_create_pipeline_from_s3_location_reads_the_object(sagemaker, s3):
    s3.create_bucket(Bucket="defs")
    s3.put_object(Bucket="defs", Key="p/definition.json", Body=DEFINITION.encode())

    sagemaker.create_pipeline(PipelineName="FromS3", RoleArn=ROLE_ARN,
                              PipelineDefinitionS3Location={"Bucket": "defs", "ObjectKey": "p/definition.json"})

    assert json.loads(sagemaker.describe_pipeline(PipelineName="FromS3")["PipelineDefinition"]) == json.loads(DEFINITION)


def test_create_pipeline_from_missing_s3_object_is_validation_exception(sagemaker, s3):
    s3.create_bucket(Bucket="defs")

    with pytest.raises(ClientError) as err:
        sagemaker.create_pipeline(PipelineName="FromS3", RoleArn=ROLE_ARN,
                                  PipelineDefinitionS3Location={"Bucket": "defs", "ObjectKey": "absent.json"})

    code, message = _error(err)
    assert code == "ValidationException"
    assert "s3://defs/absent.json" in message


def test_update_pipeline_replaces_definition_and_bumps_version(sagemaker):
    sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)
    new_definition = definition(fail_step("Other", "other"))

    answer = sagemaker.update_pipeline(PipelineName="Demo", PipelineDefinition=new_definition,
                                       PipelineDescription="second")

    described = sagemaker.describe_pipeline(PipelineName="Demo")
    assert answer["PipelineVersionId"] == 2
    assert json.loads(described["PipelineDefinition"])["Steps"][0]["Name"] == "Other"
    assert described["PipelineDescription"] == "second"


def test_update_pipeline_unknown_is_resource_not_found(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.update_pipeline(PipelineName="Nope", PipelineDefinition=DEFINITION)

    assert _error(err)[0] == "ResourceNotFound"


def test_list_pipelines_filters_by_prefix_newest_first(sagemaker):
    for name in ("alpha-1", "alpha-2", "beta"):
        sagemaker.create_pipeline(PipelineName=name, RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)

    summaries = sagemaker.list_pipelines(PipelineNamePrefix="alpha")["PipelineSummaries"]

    assert [summary["PipelineName"] for summary in summaries] == ["alpha-2", "alpha-1"]


def test_list_pipelines_pages_with_next_token(sagemaker):
    for index in range(3):
        sagemaker.create_pipeline(PipelineName=f"p{index}", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)

    first = sagemaker.list_pipelines(MaxResults=2, SortOrder="Ascending")
    second = sagemaker.list_pipelines(MaxResults=2, SortOrder="Ascending", NextToken=first["NextToken"])

    assert [s["PipelineName"] for s in first["PipelineSummaries"]] == ["p0", "p1"]
    assert [s["PipelineName"] for s in second["PipelineSummaries"]] == ["p2"]
    assert "NextToken" not in second


def test_delete_pipeline_then_describe_is_resource_not_found(sagemaker):
    sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION)

    sagemaker.delete_pipeline(PipelineName="Demo", ClientRequestToken="delete-demo-pipeline-0000000000001")

    with pytest.raises(ClientError) as err:
        sagemaker.describe_pipeline(PipelineName="Demo")
    assert _error(err)[0] == "ResourceNotFound"


def test_add_tags_then_list_tags_returns_them(sagemaker):
    arn = sagemaker.create_pipeline(PipelineName="Demo", RoleArn=ROLE_ARN, PipelineDefinition=DEFINITION,
                                    Tags=[{"Key": "team", "Value": "lungs"}])["PipelineArn"]

    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])

    tags = {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "lungs", "stage": "dev"}
