"""boto3 clients configured once for every function and CLI command.

Endpoints come from the standard variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SAGEMAKER`, ...),
which boto3 reads itself: the same code talks to AWS or to the local cloud.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from lambdas.shared.config import Settings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)


@lru_cache(maxsize=None)
def client(service: str, region: str | None = None) -> Any:
    """A cached client; callers that need a fresh one after the environment changed call `client.cache_clear()`."""
    return boto3.session.Session().client(service, region_name=region or Settings.from_env().region, config=_RETRIES)
