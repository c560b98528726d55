"""The wire protocols (like moto's responses.py): requests in, backend calls, AWS-shaped answers out.

SageMaker is AWS JSON 1.1: `POST /` with `X-Amz-Target: SageMaker.<Operation>`; the operation maps
to the backend method of the same name in snake_case, the body's fields to its keywords. The
runtime is REST-JSON: `POST /endpoints/<name>/invocations` with the raw body. No logic lives here.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from functools import cached_property
from typing import Any

import botocore.session
from botocore import xform_name
from flask import Request, Response

from infra.local.sagemaker.exceptions import (
    SageMakerError,
    SerializationException,
    UnknownOperationException,
    ValidationException,
)
from infra.local.sagemaker.models.backend import BackendDict, SageMakerBackend
from infra.local.sagemaker.models.base import call_with_params
from lambdas.shared.config import DEFAULT_REGION, LOCAL_ACCOUNT_ID

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


def region_of(request: Request) -> str:
    """The region the client signed for (SigV4 credential scope), as moto reads it."""
    match = _CREDENTIAL_SCOPE.search(request.headers.get("Authorization", ""))
    return match.group(1) if match else DEFAULT_REGION


def error_response(error: SageMakerError, *, rest: bool = False) -> Response:
    """The one place an error becomes its wire shape (REST-JSON also names it in a header)."""
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if rest:
        headers["x-amzn-ErrorType"] = error.code
    return Response(json.dumps(error.body()), status=error.status, headers=headers, content_type=JSON_CONTENT_TYPE)


class SageMakerResponse:
    """Dispatches JSON 1.1 SageMaker operations to the backend of the caller's account and region."""

    def __init__(self, backends: BackendDict, account: str = LOCAL_ACCOUNT_ID) -> None:
        self.backends = backends
        self.account = account

    @cached_property
    def _service_model(self) -> Any:
        return botocore.session.get_session().get_service_model("sagemaker")

    def dispatch(self, request: Request) -> Response:
        operation = self._operation(request.headers.get("X-Amz-Target", ""))
        params = self._params(request)
        self._check_required(operation, params)
        backend = self.backends.get(self.account, region_of(request))
        method = getattr(backend, xform_name(operation), None)
        if method is None:
            raise UnknownOperationException(f"The local SageMaker service does not implement {operation}")
        logger.debug("%s %s", operation, sorted(params))
        result = call_with_params(method, params)
        return Response(json.dumps(result), headers={"x-amzn-RequestId": str(uuid.uuid4())},
                        content_type=JSON_CONTENT_TYPE)

    def _operation(self, target: str) -> str:
        prefix, _, operation = target.partition(".")
        if prefix != "SageMaker" or not operation:
            raise UnknownOperationException(f"X-Amz-Target '{target}' is not SageMaker.<Operation>")
        if operation not in self._service_model.operation_names:
            raise UnknownOperationException(f"SageMaker has no operation named {operation}")
        return operation

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        raw = request.get_data()
        try:
            params = json.loads(raw) if raw.strip() else {}
        except ValueError as err:
            raise SerializationException(f"Request body is not JSON: {err}") from None
        if not isinstance(params, dict):
            raise SerializationException("Request body must be a JSON object")
        return params

    def _check_required(self, operation: str, params: dict[str, Any]) -> None:
        shape = self._service_model.operation_model(operation).input_shape
        missing = [name for name in (shape.required_members if shape else []) if params.get(name) in (None, "")]
        if missing:
            raise ValidationException(
                f"{len(missing)} validation error(s) detected: "
                + "; ".join(f"Value null at '{name[0].lower()}{name[1:]}' failed to satisfy constraint: "
                            "Member must not be null" for name in missing))


class RuntimeResponse:
    """sagemaker-runtime InvokeEndpoint: raw body in, the model's raw body out."""

    def __init__(self, backends: BackendDict, account: str = LOCAL_ACCOUNT_ID) -> None:
        self.backends = backends
        self.account = account

    def invoke_endpoint(self, request: Request, endpoint_name: str) -> Response:
        backend: SageMakerBackend = self.backends.get(self.account, region_of(request))
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        body, answer_type = backend.invoke_endpoint(endpoint_name, request.get_data(), content_type,
                                                    request.headers.get("Accept"))
        return Response(body, content_type=answer_type, headers={
            "x-Amzn-Invoked-Production-Variant": "AllTraffic", "x-amzn-RequestId": str(uuid.uuid4())})
