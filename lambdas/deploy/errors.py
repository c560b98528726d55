"""The deploy function's named failures; each message says what was refused and why.

All of them are raised (the pipeline's Deploy step then fails with the message); `EndpointBusy` is
the transient one: the endpoint is mid-change and a retry later will succeed.
"""
from __future__ import annotations


class InvalidDeployRequest(ValueError):
    """The event does not name a model package, endpoint and role in the expected form."""


class ModelPackageNotFound(LookupError):
    def __init__(self, arn: str) -> None:
        super().__init__(f"model package {arn} does not exist")
        self.arn = arn


class ModelPackageNotApproved(PermissionError):
    """Only an Approved package may serve traffic (approval is the registry's release gate)."""

    def __init__(self, arn: str, status: str) -> None:
        super().__init__(f"model package {arn} is {status}, not Approved: refusing to deploy it")
        self.arn = arn
        self.status = status


class ModelNameConflict(RuntimeError):
    """The deterministic model name is taken by a model serving a different package."""

    def __init__(self, model_name: str, existing: str, wanted: str) -> None:
        super().__init__(f"model {model_name} already serves {existing}, not {wanted}")
        self.model_name = model_name


class EndpointBusy(RuntimeError):
    """The endpoint is being created or updated to another configuration (retry later)."""

    def __init__(self, endpoint_name: str, status: str) -> None:
        super().__init__(f"endpoint {endpoint_name} is {status}; it cannot be updated until that finishes")
        self.endpoint_name = endpoint_name
        self.status = status


class EndpointFailed(RuntimeError):
    """The endpoint is in the Failed state, which UpdateEndpoint cannot leave: it must be deleted."""

    def __init__(self, endpoint_name: str, reason: str) -> None:
        super().__init__(f"endpoint {endpoint_name} is Failed ({reason}); delete it, then deploy again")
        self.endpoint_name = endpoint_name
