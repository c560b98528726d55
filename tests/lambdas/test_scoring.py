"""The shared scoring path: the RIFF header check and InvokeEndpoint with bounded retries."""
from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from lambdas.shared.scoring import (
    EndpointRejected,
    EndpointUnavailable,
    InvalidAudio,
    InvalidEndpointResponse,
    RetryPolicy,
    inspect_wav,
    score_wav,
)
from tests.lambdas.runtime_stub import PROBABILITIES, RuntimeStub
from tests.lambdas.wav_bytes import IEEE_FLOAT, wav_bytes

ENDPOINT = "samay-lung-sound"


def _with_bits(data: bytes, bits: int) -> bytes:
    """The same file with its fmt chunk's bits-per-sample field (bytes 34-35) overwritten."""
    return data[:34] + struct.pack("<H", bits) + data[36:]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits": 16},
        {"bits": 8},
        {"bits": 24, "channels": 2},
        {"bits": 32, "sample_rate": 44100},
        {"bits": 32, "format_code": IEEE_FLOAT},
        {"bits": 64, "format_code": IEEE_FLOAT},
        {"bits": 24, "extensible": True},
        {"bits": 16, "extra_chunk": True},
    ],
)
def test_inspect_wav_accepts_pcm_and_float_layouts(kwargs: dict) -> None:
    info = inspect_wav(wav_bytes(1.5, **kwargs), name="x.wav")
    assert info.bits_per_sample == kwargs["bits"]
    assert info.channels == kwargs.get("channels", 1)
    assert info.duration_s == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"RIFF\x10\x00", "truncated"),
        (b"hello, this is not audio at all", "not_wav"),
        (wav_bytes(2.0)[:-500], "truncated"),
        (wav_bytes(2.0)[:30], "truncated"),
        (wav_bytes(0.1), "too_short"),
        (_with_bits(wav_bytes(1.0), 12), "unsupported_format"),
        (wav_bytes(1.0, bits=16, format_code=0x0007), "unsupported_format"),
        (wav_bytes(1.0, channels=4), "unsupported_format"),
        (wav_bytes(0.0), "empty"),
    ],
)
def test_inspect_wav_rejects_bad_files_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidAudio) as caught:
        inspect_wav(data, name="bad.wav")
    assert caught.value.reason == reason
    assert str(caught.value).startswith("bad.wav: ")


def test_inspect_wav_rejects_data_before_fmt() -> None:
    good = wav_bytes(1.0)
    fmt_chunk, data_chunk = good[12:36], good[36:]
    with pytest.raises(InvalidAudio, match="before the fmt chunk") as caught:
        inspect_wav(good[:12] + data_chunk + fmt_chunk, name="swapped.wav")
    assert caught.value.reason == "not_wav"


def test_inspect_wav_enforces_size_and_duration_limits() -> None:
    data = wav_bytes(3.0)
    with pytest.raises(InvalidAudio) as too_large:
        inspect_wav(data, name="big.wav", max_bytes=len(data) - 1)
    with pytest.raises(InvalidAudio) as too_long:
        inspect_wav(data, name="long.wav", max_seconds=2.0)
    assert (too_large.value.reason, too_long.value.reason) == ("too_large", "too_long")


def test_inspect_wav_reads_every_real_recording(lung_sounds_dir: Path) -> None:
    # GIVEN the real KAUH and ICBHI files (4 kHz / 44.1 kHz, PCM 16/24/32)
    rows = list(csv.DictReader((lung_sounds_dir / "labels.csv").open()))
    for row in rows:
        # WHEN their headers are read THEN rate and duration match what labels.csv says
        info = inspect_wav((lung_sounds_dir / row["file"]).read_bytes(), name=row["file"])
        assert info.sample_rate == int(row["sample_rate"]), row["file"]
        assert info.duration_s == pytest.approx(float(row["duration_s"]), abs=0.01), row["file"]
        assert info.bits_per_sample == int(row["subtype"].removeprefix("PCM_")), row["file"]


def test_retry_delay_is_jittered_below_the_exponential_cap() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay_s=0.5, max_delay_s=3.0)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(0.0 <= d <= cap for d in delays)
        assert len(set(delays)) > 1


def test_score_wav_returns_the_endpoint_prediction(runtime_stub: RuntimeStub) -> None:
    scored = score_wav(wav_bytes(2.0), name="a.wav", endpoint_name=ENDPOINT)
    assert scored.prediction.label == "Normal"
    assert scored.prediction.probabilities == PROBABILITIES
    assert scored.attempts == 1 and len(scored.audio_sha256) == 64
    assert runtime_stub.calls() == [{"path": f"/endpoints/{ENDPOINT}/invocations", "content_type": "audio/wav", "bytes": len(wav_bytes(2.0))}]


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "error": "ServiceUnavailable"},
        {"status": 400, "error": "ThrottlingException"},
        {"status": 429, "error": "ModelNotReadyException"},
        {"status": 500, "error": "InternalFailure"},
        {"status": 424, "error": "ModelError", "original_status": 503},
    ],
)
def test_score_wav_retries_transient_failures(runtime_stub: RuntimeStub, failure: dict) -> None:
    # GIVEN an endpoint that fails twice, then answers
    runtime_stub.script(failure, failure)
    # WHEN a file is scored THEN the third attempt's prediction comes back
    scored = score_wav(wav_bytes(1.0), name="a.wav", endpoint_name=ENDPOINT)
    assert (scored.attempts, len(runtime_stub.calls()), scored.prediction.label) == (3, 3, "Normal")


def test_score_wav_gives_up_after_the_bounded_attempts(runtime_stub: RuntimeStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_INVOKE_MAX_ATTEMPTS", "3")
    runtime_stub.script(*[{"status": 503, "error": "ServiceUnavailable", "message": "overloaded"}] * 5)
    with pytest.raises(EndpointUnavailable, match="gave up after 3 attempts") as caught:
        score_wav(wav_bytes(1.0), name="a.wav", endpoint_name=ENDPOINT)
    assert caught.value.reason == "endpoint_unavailable"
    assert len(runtime_stub.calls()) == 3


def test_score_wav_never_retries_a_rejected_input(runtime_stub: RuntimeStub) -> None:
    runtime_stub.script({"status": 424, "error": "ModelError", "original_status": 400, "message": "audio is too short: 0.6 s < 2.0 s"})
    with pytest.raises(EndpointRejected, match="too short") as caught:
        score_wav(wav_bytes(0.6), name="short.wav", endpoint_name=ENDPOINT)
    assert caught.value.reason == "rejected_by_endpoint"
    assert len(runtime_stub.calls()) == 1


def test_score_wav_reports_a_missing_endpoint_without_retrying(runtime_stub: RuntimeStub) -> None:
    runtime_stub.script({"status": 400, "error": "ValidationError", "message": "Endpoint samay-lung-sound of account 123456789012 not found."})
    with pytest.raises(EndpointUnavailable) as caught:
        score_wav(wav_bytes(1.0), name="a.wav", endpoint_name=ENDPOINT)
    assert caught.value.reason == "endpoint_not_found"
    assert len(runtime_stub.calls()) == 1


def test_score_wav_checks_the_header_before_calling(runtime_stub: RuntimeStub) -> None:
    with pytest.raises(InvalidAudio):
        score_wav(b"not audio", name="x.wav", endpoint_name=ENDPOINT)
    assert runtime_stub.calls() == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"label": "Normal", "probabilities": {"Normal": 0.5, "COPD": 0.2}, "model_version": "1", "windows": 2},
        {"label": "Flu", "probabilities": {"Normal": 1.0}, "model_version": "1", "windows": 2},
        {"label": "Normal", "probabilities": {"Normal": 1.0}, "windows": 2},
    ],
)
def test_score_wav_refuses_answers_that_break_the_contract(runtime_stub: RuntimeStub, body: object) -> None:
    runtime_stub.script({"status": 200, "body": body})
    with pytest.raises(InvalidEndpointResponse) as caught:
        score_wav(wav_bytes(1.0), name="a.wav", endpoint_name=ENDPOINT)
    assert caught.value.reason == "bad_endpoint_response"


def test_model_version_may_be_a_number(runtime_stub: RuntimeStub) -> None:
    runtime_stub.script({"status": 200, "body": {"label": "Normal", "probabilities": {"Normal": 1.0}, "model_version": 7, "windows": 1}})
    scored = score_wav(wav_bytes(1.0), name="a.wav", endpoint_name=ENDPOINT)
    assert scored.prediction.model_version == "7"
    assert json.loads(scored.prediction.model_dump_json())["model_version"] == "7"


def test_retry_policy_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMAY_INVOKE_MAX_ATTEMPTS", "0")
    with pytest.raises(ValueError, match="max_attempts >= 1"):
        RetryPolicy.from_env()
