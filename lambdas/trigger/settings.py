"""The trigger's settings, read once per cold start from the environment the stack sets."""
from __future__ import annotations

import os
from dataclasses import dataclass

from lambdas.shared.config import INGEST_STATE_TABLE, Settings

DEFAULT_COMMIT_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class TriggerSettings:
    bucket: str
    state_table: str
    idempotency_table: str
    pipeline_name: str
    commit_timeout_seconds: int
    auto_commit_min_recordings: int  # 0 = off: only commits start the pipeline

    @classmethod
    def from_env(cls) -> "TriggerSettings":
        shared = Settings.from_env()
        env = os.environ
        return cls(
            bucket=shared.bucket,
            state_table=env.get("SAMAY_INGEST_STATE_TABLE", INGEST_STATE_TABLE),
            idempotency_table=shared.idempotency_table,
            pipeline_name=shared.pipeline_name,
            commit_timeout_seconds=int(env.get("SAMAY_COMMIT_TIMEOUT_SECONDS", DEFAULT_COMMIT_TIMEOUT_SECONDS)),
            auto_commit_min_recordings=int(env.get("SAMAY_AUTO_COMMIT_MIN_RECORDINGS", "0")),
        )
