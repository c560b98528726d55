"""Pipelines: create, update, describe, list, delete; the definition is checked when stored."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.local.sagemaker.definition import parse_definition
from infra.local.sagemaker.exceptions import ResourceNotFound, ValidationException
from infra.local.sagemaker.models.base import Record, make_arn, name_of, now, page, public, require
from lambdas.shared import aws


class PipelinesMixin:
    """State of the Pipeline resources; mixed into SageMakerBackend (which owns `pipelines`)."""

    pipelines: dict[str, Record]

    def create_pipeline(
        self,
        pipeline_name: str,
        role_arn: str,
        pipeline_definition: str | None = None,
        pipeline_definition_s3_location: dict[str, str] | None = None,
        pipeline_display_name: str | None = None,
        pipeline_description: str | None = None,
        tags: list[dict[str, str]] | None = None,
        parallelism_configuration: dict[str, Any] | None = None,
    ) -> Record:
        require(pipeline_name, "pipelineName")
        require(role_arn, "roleArn")
        text = self._definition_text(pipeline_definition, pipeline_definition_s3_location)
        with self.lock:
            if pipeline_name.lower() in self.pipelines:
                # The message the SDK's Pipeline.upsert looks for before it falls back to UpdatePipeline.
                raise ValidationException(
                    "Pipeline names must be unique within an AWS account and region. "
                    f"Pipeline with name ({pipeline_name}) already exists."
                )
            created = now()
            record: Record = {
                "PipelineArn": make_arn(self.region, self.account, "pipeline", pipeline_name),
                "PipelineName": pipeline_name,
                "PipelineDisplayName": pipeline_display_name or pipeline_name,
                "PipelineDefinition": text,
                "PipelineDescription": pipeline_description or "",
                "RoleArn": role_arn,
                "PipelineStatus": "Active",
                "CreationTime": created,
                "LastModifiedTime": created,
                "_version": 1,
            }
            if parallelism_configuration:
                record["ParallelismConfiguration"] = parallelism_configuration
            self.pipelines[pipeline_name.lower()] = record
            self._tag(record["PipelineArn"], tags)
            self._save()
        return {"PipelineArn": record["PipelineArn"]}

    def update_pipeline(
        self,
        pipeline_name: str,
        pipeline_definition: str | None = None,
        pipeline_definition_s3_location: dict[str, str] | None = None,
        pipeline_display_name: str | None = None,
        pipeline_description: str | None = None,
        role_arn: str | None = None,
        parallelism_configuration: dict[str, Any] | None = None,
    ) -> Record:
        text = None
        if pipeline_definition is not None or pipeline_definition_s3_location is not None:
            text = self._definition_text(pipeline_definition, pipeline_definition_s3_location)
        with self.lock:
            record = self.get_pipeline(pipeline_name)
            updates = {
                "PipelineDefinition": text,
                "PipelineDisplayName": pipeline_display_name,
                "PipelineDescription": pipeline_description,
                "RoleArn": role_arn,
                "ParallelismConfiguration": parallelism_configuration,
            }
            record.update({key: value for key, value in updates.items() if value is not None})
            record["LastModifiedTime"] = now()
            record["_version"] += 1
            self._save()
        return {"PipelineArn": record["PipelineArn"], "PipelineVersionId": record["_version"]}

    def describe_pipeline(self, pipeline_name: str, pipeline_version_id: int | None = None) -> Record:
        with self.lock:
            return public(self.get_pipeline(pipeline_name))

    def list_pipelines(
        self,
        pipeline_name_prefix: str | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Record:
        summary_fields = ("PipelineArn", "PipelineName", "PipelineDisplayName", "PipelineDescription",
                          "RoleArn", "CreationTime", "LastModifiedTime", "LastExecutionTime")
        with self.lock:
            rows = [
                {key: record[key] for key in summary_fields if key in record}
                for record in self.pipelines.values()
                if record["PipelineName"].startswith(pipeline_name_prefix or "")
            ]
        sort_key = "PipelineName" if sort_by == "Name" else "CreationTime"
        return page(rows, "PipelineSummaries", max_results=max_results, next_token=next_token,
                    sort_by=sort_key, sort_order=sort_order, default_order="Descending")

    def delete_pipeline(self, pipeline_name: str) -> Record:
        with self.lock:
            record = self.get_pipeline(pipeline_name)
            del self.pipelines[record["PipelineName"].lower()]
            self.tags.pop(record["PipelineArn"], None)
            self._save()
        return {"PipelineArn": record["PipelineArn"]}

    def get_pipeline(self, pipeline_name: str) -> Record:
        """The stored record (name or ARN), or ResourceNotFound as AWS words it."""
        require(pipeline_name, "pipelineName")
        record = self.pipelines.get(name_of(pipeline_name).lower())
        if record is None:
            arn = pipeline_name if pipeline_name.startswith("arn:") else make_arn(
                self.region, self.account, "pipeline", pipeline_name)
            raise ResourceNotFound(f"Pipeline '{arn}' does not exist.")
        return record

    @staticmethod
    def _definition_text(inline: str | None, location: dict[str, str] | None) -> str:
        """The definition from the request or from S3 (the SDK uploads large ones), checked."""
        if inline is None and location is None:
            raise ValidationException("Either PipelineDefinition or PipelineDefinitionS3Location must be given")
        if inline is None:
            text = _read_s3_definition(location or {})
        else:
            text = inline
        parse_definition(text)
        return text


def _read_s3_definition(location: dict[str, str]) -> str:
    bucket, key = location.get("Bucket"), location.get("ObjectKey")
    if not bucket or not key:
        raise ValidationException("PipelineDefinitionS3Location needs Bucket and ObjectKey")
    extra = {"VersionId": location["VersionId"]} if location.get("VersionId") else {}
    try:
        return aws.client("s3").get_object(Bucket=bucket, Key=key, **extra)["Body"].read().decode("utf-8")
    except (ClientError, BotoCoreError) as err:
        raise ValidationException(f"PipelineDefinitionS3Location s3://{bucket}/{key} cannot be read: {err}") from None
