"""The Lambda context object, as the Powertools docs fake it for unit tests of handlers."""
from __future__ import annotations

from dataclasses import dataclass

from lambdas.shared.config import LOCAL_ACCOUNT_ID


@dataclass
class LambdaContext:
    """The attributes Powertools' Logger, Metrics and idempotency read from the runtime's context."""

    function_name: str = "samay-test"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
