"""AWS-style errors of the local SageMaker service, one class per AWS error code (as moto does).

The backend raises them; the protocol layer turns each into the wire shape boto3 parses: for the
JSON 1.1 SageMaker API an HTTP 400 with `{"__type": code, "message": ...}`, for the REST-JSON
runtime API the modelled status code with an `x-amzn-ErrorType` header.
"""
from __future__ import annotations

from typing import Any


class SageMakerError(Exception):
    """Base of every error the service answers with; `code` is the AWS error code."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.fields}


class InternalFailure(SageMakerError):
    """A bug in this service: answered as JSON, never as an HTML stack trace."""

    status = 500


class ValidationException(SageMakerError):
    code = "ValidationException"


class ResourceNotFound(SageMakerError):
    code = "ResourceNotFound"


class ResourceInUse(SageMakerError):
    code = "ResourceInUse"


class ResourceLimitExceeded(SageMakerError):
    code = "ResourceLimitExceeded"


class ConflictException(SageMakerError):
    code = "ConflictException"


class UnknownOperationException(SageMakerError):
    code = "UnknownOperationException"


class SerializationException(SageMakerError):
    code = "SerializationException"


class RuntimeValidationError(SageMakerError):
    """sagemaker-runtime's `ValidationError` (unknown endpoint, endpoint not in service)."""

    code = "ValidationError"


class ModelError(SageMakerError):
    """sagemaker-runtime's `ModelError`: the model container answered with a non-2xx status."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, *, original_status: int, original_message: str) -> None:
        super().__init__(message, OriginalStatusCode=original_status, OriginalMessage=original_message)


class ServiceUnavailable(SageMakerError):
    code = "ServiceUnavailable"
    status = 503
