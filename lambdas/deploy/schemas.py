"""What the pipeline's Deploy step sends to `samay-deploy` and what it gets back.

The request is the LambdaStep's `inputs` (strings, as SageMaker passes them); the result's fields
are the step's declared `OutputParameters` (all strings).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lambdas.shared.config import ENDPOINT_NAME

ModelPackageArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[A-Za-z0-9-]+(/\d+)?$")
]
RoleArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]
# SageMaker resource names: alphanumerics and hyphens, at most 63 characters.
ResourceName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
InstanceType = Annotated[str, StringConstraints(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")]


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_package_arn: ModelPackageArn
    role_arn: RoleArn
    endpoint_name: ResourceName = ENDPOINT_NAME
    instance_type: InstanceType = "ml.m5.large"
    initial_instance_count: int = Field(default=1, ge=1, le=10)


class DeployResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    action: Literal["created", "updated", "unchanged"]
