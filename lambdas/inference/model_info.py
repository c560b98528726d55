"""Which registered model package the endpoint serves, for the `model_package_arn` of each prediction.

DescribeEndpoint -> EndpointConfig -> Model -> ModelPackageName costs three control-plane calls, so
the answer is cached per warm container and looked up again only when the endpoint starts
answering with a model_version not seen before (a deployment happened). A lookup that failed is
not cached: the next prediction asks again instead of going without an ARN until the container dies.
"""
from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared import aws

logger = logging.getLogger(__name__)


class ModelPackageLookup:
    """Cache of (endpoint, model_version) -> model package ARN (None when the model has none)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str | None] = {}

    def arn_for(self, endpoint_name: str, model_version: str) -> str | None:
        """The package ARN, or None (logged) when it cannot be known: a prediction is worth storing without it."""
        key = (endpoint_name, model_version)
        if key not in self._cache:
            try:
                self._cache[key] = self._describe(endpoint_name)
            except (ClientError, BotoCoreError, KeyError, IndexError) as err:
                logger.warning("model package of the endpoint unknown",
                               extra={"endpoint_name": endpoint_name, "reason": str(err)})
                return None
        return self._cache[key]

    @staticmethod
    def _describe(endpoint_name: str) -> str | None:
        """The ModelPackageName behind the endpoint's first variant (None: a model without a package)."""
        sagemaker = aws.client("sagemaker")
        config_name = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
        model = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
        containers = [model.get("PrimaryContainer") or {}, *model.get("Containers", [])]
        return next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)
