"""`samay-deploy`: the pipeline's Deploy step puts a registered, Approved model on endpoint `samay-lung-sound`.

Event (the LambdaStep's inputs): `{"model_package_arn", "role_arn", "endpoint_name", "instance_type",
"initial_instance_count"}`; result (its outputs): `{"endpoint_name", "endpoint_config_name",
"model_name", "action": "created" | "updated" | "unchanged"}`.

Not wrapped in Powertools `@idempotent` (STYLE asks for it on deploys): the names are derived from
the package, so a replay converges on the same state by itself and truthfully reports
"unchanged", where a cached first answer ("created") would describe a past call.
"""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from lambdas.deploy.endpoint import deploy
from lambdas.deploy.errors import InvalidDeployRequest
from lambdas.deploy.schemas import DeployRequest
from lambdas.shared.config import DEPLOY_FUNCTION

logger = Logger(service=DEPLOY_FUNCTION)
tracer = Tracer(service=DEPLOY_FUNCTION)
metrics = Metrics(namespace="Samay", service=DEPLOY_FUNCTION)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    result = deploy(parse_request(event))
    metrics.add_dimension(name="action", value=result.action)
    metrics.add_metric(name="EndpointDeployments", unit=MetricUnit.Count, value=1)
    return result.model_dump()


def parse_request(event: Any) -> DeployRequest:
    """The typed request, or InvalidDeployRequest naming each bad field and why."""
    try:
        return parse(event=event, model=DeployRequest)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in err.errors())
        raise InvalidDeployRequest(f"invalid deploy request: {problems}") from None
