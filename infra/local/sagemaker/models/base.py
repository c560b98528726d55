"""Helpers shared by every resource family of the backend: ARNs, times, listing, the public view."""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore import xform_name

from infra.local.sagemaker.exceptions import ValidationException

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str, str, str], None]
"""`on_status_change(resource_type, arn, status)`: called after every status change is stored."""

Record = dict[str, Any]


def now() -> float:
    """Timestamps are epoch seconds: the JSON protocol sends them as numbers and boto3 parses them."""
    return time.time()


def make_arn(region: str, account: str, resource: str, name: str) -> str:
    # AWS lower-cases the resource name inside SageMaker ARNs.
    return f"arn:aws:sagemaker:{region}:{account}:{resource}/{name.lower()}"


def name_of(name_or_arn: str) -> str:
    """The resource name from either a name or an ARN (lower-case, as the ARN holds it)."""
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def public(record: Record) -> Record:
    """A stored record without its internal fields (keys starting with '_')."""
    return {key: value for key, value in record.items() if not key.startswith("_")}


def page(
    items: Iterable[Record],
    key: str,
    *,
    max_results: int | None = None,
    next_token: str | None = None,
    sort_by: str | None = None,
    sort_order: str | None = None,
    default_order: str = "Ascending",
) -> dict[str, Any]:
    """One page of a List* answer, sorted as asked; NextToken is the offset of the next page."""
    rows = list(items)
    if sort_by:
        rows.sort(key=lambda row: (row.get(sort_by) is None, row.get(sort_by)))
    if (sort_order or default_order) == "Descending":
        rows.reverse()
    try:
        start = int(next_token or 0)
    except ValueError:
        raise ValidationException(f"NextToken '{next_token}' is not a token this service issued") from None
    size = max_results or 100
    answer: dict[str, Any] = {key: rows[start : start + size]}
    if start + size < len(rows):
        answer["NextToken"] = str(start + size)
    return answer


def require(value: Any, field: str) -> Any:
    """A required request field, or a ValidationException naming it."""
    if value in (None, "", [], {}):
        raise ValidationException(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")
    return value


def call_with_params(method: Callable[..., Any], params: dict[str, Any]) -> Any:
    """Call a backend method with an AWS request's top-level fields as snake_case keywords.

    Fields the method does not take are options the local service accepts and ignores (logged),
    so an SDK that sends e.g. ParallelismConfiguration still works.
    """
    signature = inspect.signature(method)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        key = xform_name(name)
        if takes_any or key in signature.parameters:
            kwargs[key] = value
        else:
            logger.debug("%s: ignoring %s (not used by the local service)", method.__name__, name)
    return method(**kwargs)
