"""Scoring one WAV through the endpoint: the code the inference Lambda, the predict API and
`samay predict` share.

The WAV check reads only the RIFF header with `struct` (no numpy, no librosa: the Lambdas must
cold-start fast), so a file that is plainly not audio, truncated, empty or too large never costs
an endpoint call. Everything about the sound itself (silence, NaN, resampling, too short for one
window) is the endpoint's job; it answers such input with a 4xx, which is not retried.

InvokeEndpoint is retried here, not by botocore, so the policy is explicit and bounded: throttling,
5xx and ModelNotReady are retried with exponential backoff and full jitter; a 4xx (the input is
bad) never is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lambdas.shared.config import Settings

logger = logging.getLogger(__name__)

CONTENT_TYPE = "audio/wav"
# The real-time InvokeEndpoint request limit is 6 MB; a larger body would be refused anyway.
MAX_AUDIO_BYTES = 6_000_000
MIN_SECONDS = 0.5
MAX_SECONDS = 600.0

_PCM = 0x0001
_IEEE_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
_SUPPORTED_BITS = {_PCM: {8, 16, 24, 32}, _IEEE_FLOAT: {32, 64}}
_MAX_CHANNELS = 2
_MAX_SAMPLE_RATE = 384_000

_RETRYABLE_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ModelNotReadyException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
}


class ScoringError(Exception):
    """A recording that could not be scored; `reason` is a machine-readable code, `source` names the input."""

    reason = "scoring_failed"

    def __init__(self, source: str, message: str, reason: str | None = None) -> None:
        self.source = source
        self.message = message
        if reason is not None:
            self.reason = reason
        super().__init__(f"{source}: {message}")


class InvalidAudio(ScoringError, ValueError):
    """The bytes are not a WAV the endpoint can take (reason: empty, not_wav, truncated,
    unsupported_format, too_short, too_long, too_large)."""


class EndpointRejected(ScoringError):
    """The endpoint refused this input (a 4xx): retrying the same bytes cannot help."""

    reason = "rejected_by_endpoint"


class EndpointUnavailable(ScoringError):
    """The endpoint did not answer usefully after the bounded retries (or does not exist)."""

    reason = "endpoint_unavailable"


class InvalidEndpointResponse(ScoringError):
    """The endpoint answered 200 with a body that breaks the DESIGN 4.7 contract."""

    reason = "bad_endpoint_response"


@dataclass(frozen=True)
class WavInfo:
    """What the RIFF header says about a WAV file."""

    format_code: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def check_size(size: int, *, name: str, max_bytes: int = MAX_AUDIO_BYTES) -> None:
    """Reject an object by its size alone, before anyone downloads it."""
    if size == 0:
        raise InvalidAudio(name, "the file is empty", "empty")
    if size > max_bytes:
        raise InvalidAudio(name, f"{size} bytes is more than the {max_bytes}-byte limit of one endpoint call", "too_large")


def inspect_wav(
    data: bytes,
    *,
    name: str,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    max_bytes: int = MAX_AUDIO_BYTES,
) -> WavInfo:
    """Parse the RIFF/WAVE header and check the audio is plausible to score; raise InvalidAudio otherwise."""
    check_size(len(data), name=name, max_bytes=max_bytes)
    if len(data) < 12:
        reason = "truncated" if b"RIFF".startswith(data[:4]) else "not_wav"
        raise InvalidAudio(name, f"only {len(data)} bytes, shorter than a RIFF header", reason)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudio(name, "not a RIFF/WAVE file (the header does not start with RIFF....WAVE)", "not_wav")
    fmt, data_size = _read_chunks(data, name)
    info = WavInfo(*fmt, frames=data_size // (fmt[1] * fmt[3] // 8))
    if info.frames == 0:
        raise InvalidAudio(name, "the data chunk holds no samples", "empty")
    if info.duration_s < min_seconds:
        raise InvalidAudio(name, f"{info.duration_s:.2f} s is shorter than the {min_seconds} s minimum", "too_short")
    if info.duration_s > max_seconds:
        raise InvalidAudio(name, f"{info.duration_s:.1f} s is longer than the {max_seconds:.0f} s maximum", "too_long")
    return info


def _read_chunks(data: bytes, name: str) -> tuple[tuple[int, int, int, int], int]:
    """Walk the chunks: the decoded `fmt ` tuple and the byte size of the `data` chunk."""
    offset, fmt = 12, None
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = offset + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body : body + size], name)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudio(name, "the data chunk comes before the fmt chunk", "not_wav")
            if body + size > len(data):
                raise InvalidAudio(name, f"the data chunk declares {size} bytes but only {len(data) - body} follow", "truncated")
            return fmt, size
        offset = body + size + (size & 1)
    if fmt is None:
        raise InvalidAudio(name, "no fmt chunk before the end of the file", "truncated")
    raise InvalidAudio(name, "no data chunk before the end of the file", "truncated")


def _parse_fmt(chunk: bytes, name: str) -> tuple[int, int, int, int]:
    if len(chunk) < 16:
        raise InvalidAudio(name, f"the fmt chunk holds {len(chunk)} bytes, fewer than 16", "truncated")
    code, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    if code == _EXTENSIBLE:
        if len(chunk) < 26:
            raise InvalidAudio(name, "WAVE_FORMAT_EXTENSIBLE without its sub-format", "truncated")
        (code,) = struct.unpack_from("<H", chunk, 24)
    if bits not in _SUPPORTED_BITS.get(code, set()):
        raise InvalidAudio(name, f"format code {code:#06x} with {bits}-bit samples is not PCM 8/16/24/32 or float 32/64", "unsupported_format")
    if not 1 <= channels <= _MAX_CHANNELS:
        raise InvalidAudio(name, f"{channels} channels; only mono or stereo is accepted", "unsupported_format")
    if not 0 < rate <= _MAX_SAMPLE_RATE:
        raise InvalidAudio(name, f"sample rate {rate} Hz is not plausible", "unsupported_format")
    if block_align != channels * bits // 8:
        raise InvalidAudio(name, f"block align {block_align} does not match {channels} x {bits}-bit samples", "not_wav")
    return code, channels, rate, bits


class EndpointPrediction(BaseModel):
    """The endpoint's answer (DESIGN 4.7), checked: a label among the classes, probabilities that sum to 1."""

    model_config = ConfigDict(frozen=True)

    label: str
    probabilities: dict[str, float] = Field(min_length=1)
    model_version: str
    windows: int = Field(ge=1)

    @field_validator("model_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _consistent(self) -> "EndpointPrediction":
        if self.label not in self.probabilities:
            raise ValueError(f"label {self.label!r} is not one of the classes {sorted(self.probabilities)}")
        if any(not 0.0 <= p <= 1.0 for p in self.probabilities.values()):
            raise ValueError("a probability lies outside [0, 1]")
        if abs(sum(self.probabilities.values()) - 1.0) > 1e-3:
            raise ValueError(f"probabilities sum to {sum(self.probabilities.values()):.4f}, not 1")
        return self


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter (sleep ~ U(0, min(cap, base * 2**n)))."""

    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 4.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        env = os.environ
        return cls(
            max_attempts=int(env.get("SAMAY_INVOKE_MAX_ATTEMPTS", cls.max_attempts)),
            base_delay_s=float(env.get("SAMAY_INVOKE_BACKOFF_BASE_S", cls.base_delay_s)),
            max_delay_s=float(env.get("SAMAY_INVOKE_BACKOFF_MAX_S", cls.max_delay_s)),
        )

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError(f"retry policy needs max_attempts >= 1 and non-negative delays, got {self}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Scored:
    """A successful scoring: the endpoint's prediction, the time it took (retries included) and the tries."""

    prediction: EndpointPrediction
    latency_ms: float
    attempts: int
    audio_sha256: str


@lru_cache(maxsize=None)
def runtime_client() -> Any:
    """sagemaker-runtime with botocore's own retries off: `invoke_endpoint` owns the retry policy,
    and stacking both would multiply the attempts (so not `lambdas.shared.aws.client`)."""
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=70)
    return boto3.session.Session().client("sagemaker-runtime", region_name=Settings.from_env().region, config=config)


def score_wav(
    data: bytes,
    *,
    name: str,
    endpoint_name: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Scored:
    """Check the WAV header, then score it through the endpoint; raise a ScoringError subclass if it cannot be."""
    inspect_wav(data, name=name)
    started = time.perf_counter()
    body, attempts = invoke_endpoint(data, name=name, endpoint_name=endpoint_name, policy=policy, sleep=sleep)
    latency_ms = (time.perf_counter() - started) * 1000.0
    return Scored(parse_response(body, name=name), round(latency_ms, 1), attempts, hashlib.sha256(data).hexdigest())


def invoke_endpoint(
    data: bytes,
    *,
    name: str,
    endpoint_name: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bytes, int]:
    """POST the raw WAV (audio/wav); return the response body and how many attempts it took."""
    policy = policy or RetryPolicy.from_env()
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = runtime_client().invoke_endpoint(
                EndpointName=endpoint_name, ContentType=CONTENT_TYPE, Accept="application/json", Body=data
            )
            return response["Body"].read(), attempt
        except ClientError as err:
            failure = _classify(err, name, endpoint_name)
        except (BotocoreConnectionError, HTTPClientError) as err:
            failure = EndpointUnavailable(name, f"endpoint {endpoint_name} unreachable: {err}")
        if not isinstance(failure, EndpointUnavailable) or failure.reason == "endpoint_not_found":
            raise failure
        if attempt < policy.max_attempts:
            wait = policy.delay(attempt)
            logger.warning("endpoint call failed, retrying", extra={"attempt": attempt, "wait_s": round(wait, 3), "reason": failure.message})
            sleep(wait)
    raise EndpointUnavailable(name, f"{failure.message} (gave up after {policy.max_attempts} attempts)")


def _classify(err: ClientError, name: str, endpoint_name: str) -> ScoringError:
    """Turn an InvokeEndpoint error into the retryable EndpointUnavailable or the final EndpointRejected."""
    error = err.response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message", "") or str(err)
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == "ModelError":
        status = int(err.response.get("OriginalStatusCode") or error.get("OriginalStatusCode") or 500)
        message = err.response.get("OriginalMessage") or error.get("OriginalMessage") or message
    if code in _RETRYABLE_CODES or status >= 500 or status == 429:
        return EndpointUnavailable(name, f"endpoint {endpoint_name} answered {code or status}: {message}")
    if code == "ValidationError" and "not found" in message.lower():
        return EndpointUnavailable(name, f"endpoint {endpoint_name} not found: {message}", "endpoint_not_found")
    return EndpointRejected(name, f"the endpoint rejected the audio ({code or status}): {message}")


def parse_response(body: bytes, *, name: str) -> EndpointPrediction:
    try:
        return EndpointPrediction.model_validate(json.loads(body))
    except (ValueError, ValidationError) as err:
        raise InvalidEndpointResponse(name, f"the endpoint's answer does not follow the contract: {err}") from None
