"""Scoring one uploaded recording and storing the outcome: the body of the inference function.

Every object ends in exactly one place: an OK prediction, a FAILED prediction with its reason (and
a copy under `inference/failed/`), or nothing new because the same bytes were already scored
(a re-delivered event or an identical re-upload). Errors of the storage itself (throttling, a
network fault) propagate so the platform retries the event; every write is conditional, so the
retry cannot duplicate what the first attempt already stored.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from lambdas.inference.model_info import ModelPackageLookup
from lambdas.inference.objects import FetchedObject, IncomingObject, ObjectHead, ObjectMissing, download, read_head, set_aside
from lambdas.shared.config import Settings
from lambdas.shared.predictions import NO_MODEL_VERSION, Prediction, ensure_line, find_scored, store_prediction
from lambdas.shared.scoring import RetryPolicy, Scored, ScoringError, check_size, score_wav

logger = logging.getLogger(__name__)


class Outcome(str, enum.Enum):
    """Where one object ended: a new OK or FAILED prediction, nothing new (already stored), or not ours."""

    OK = "OK"
    FAILED = "FAILED"
    DUPLICATE = "DUPLICATE"
    IGNORED = "IGNORED"


class AlreadyScoredDifferently(ScoringError):
    """This recording id was already scored by this model from different bytes; the new upload is set aside."""

    reason = "conflicting_upload"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    prediction: Prediction | None = None


@dataclass
class Processor:
    """Scores and stores one object at a time: settings of this invocation, the model-package cache of the container."""

    settings: Settings
    models: ModelPackageLookup
    policy: RetryPolicy

    def process(self, obj: IncomingObject) -> Result:
        """Head (size, metadata) -> download -> same bytes already scored? -> score -> store; never raises for bad audio."""
        if not obj.is_incoming:
            return Result(Outcome.IGNORED)
        head = ObjectHead(obj.size)
        try:
            head = read_head(obj)
            check_size(head.size, name=obj.name)
            fetched = FetchedObject(download(obj), head.metadata)
        except ScoringError as err:
            return self._fail(obj, err, FetchedObject(b"", head.metadata))
        existing = find_scored(self.settings.predictions_table, obj.recording_id, fetched.sha256)
        if existing is not None:
            ensure_line(existing, bucket=self.settings.bucket)
            return Result(Outcome.DUPLICATE, existing)
        try:
            scored = score_wav(fetched.body, name=obj.name, endpoint_name=self.settings.endpoint_name, policy=self.policy)
        except ScoringError as err:
            return self._fail(obj, err, fetched)
        return self._store_ok(obj, fetched, scored)

    def _store_ok(self, obj: IncomingObject, fetched: FetchedObject, scored: Scored) -> Result:
        result = scored.prediction
        prediction = Prediction(
            recording_id=obj.recording_id,
            model_version=result.model_version,
            status="OK",
            predicted_label=result.label,
            probabilities=result.probabilities,
            windows=result.windows,
            model_package_arn=self.models.arn_for(self.settings.endpoint_name, result.model_version),
            endpoint_name=self.settings.endpoint_name,
            latency_ms=scored.latency_ms,
            s3_uri=obj.uri,
            audio_sha256=scored.audio_sha256,
            **fetched.metadata,
        )
        stored, created = store_prediction(prediction, table=self.settings.predictions_table, bucket=self.settings.bucket)
        if not created and stored.audio_sha256 != prediction.audio_sha256:
            message = f"already scored by model {stored.model_version} from other audio ({stored.s3_uri})"
            return self._fail(obj, AlreadyScoredDifferently(obj.name, message), fetched)
        if scored.attempts > 1:
            logger.info("scored after %d attempts", scored.attempts, extra={"recording_id": obj.recording_id})
        return Result(Outcome.OK if created else Outcome.DUPLICATE, stored)

    def _fail(self, obj: IncomingObject, error: ScoringError, fetched: FetchedObject) -> Result:
        """A FAILED prediction with the reason, and the recording copied aside (when it still exists)."""
        if not isinstance(error, ObjectMissing):
            set_aside(obj, error)
        prediction = Prediction(
            recording_id=obj.recording_id,
            model_version=NO_MODEL_VERSION,
            status="FAILED",
            error=str(error),
            error_reason=error.reason,
            endpoint_name=self.settings.endpoint_name,
            s3_uri=obj.uri,
            audio_sha256=fetched.sha256 if fetched.body else None,
            **fetched.metadata,
        )
        stored, created = store_prediction(prediction, table=self.settings.predictions_table, bucket=self.settings.bucket)
        return Result(Outcome.FAILED if created else Outcome.DUPLICATE, stored)
