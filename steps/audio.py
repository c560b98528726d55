"""Audio I/O and validation: any PCM WAV in, mono float32 at the model rate out, or a typed error.

Every recording that enters training or serving passes through `load_audio`, so a bad file is
rejected here once, with an error that names the file and a machine-readable reason code
(`AudioError.reason`) that callers can store in a quarantine record or return as HTTP 400.

The RIFF chunk table is read by hand before libsndfile sees the file: libsndfile silently clamps a
truncated data chunk to what is present, and we want truncation reported, and an absurd length
refused before any sample is decoded.
"""
from __future__ import annotations

import io
import logging
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

MODEL_SAMPLE_RATE = 4000

# Peak below this (about -100 dBFS, a third of one 16-bit step) means there is nothing to hear.
SILENCE_PEAK = 1e-5
# Sample encodings we accept: integer PCM and float; compressed WAV payloads are refused.
SUPPORTED_SUBTYPES = frozenset({"PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"})
# RIFF/RF64 streaming writers put this placeholder in the data size when the length is unknown.
_UNKNOWN_SIZE = 0xFFFFFFFF


class AudioError(ValueError):
    """A recording that cannot be used; `reason` is a stable code, `source` names the input."""

    reason = "invalid_audio"

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.detail = detail

    def __reduce__(self):  # keep the two-argument constructor picklable (worker processes)
        return (type(self), (self.source, self.detail))


class EmptyAudio(AudioError):
    reason = "empty"


class NotAWav(AudioError):
    reason = "not_wav"


class TruncatedAudio(AudioError):
    reason = "truncated"


class UnsupportedFormat(AudioError):
    reason = "unsupported_format"


class TooShort(AudioError):
    reason = "too_short"


class TooLong(AudioError):
    reason = "too_long"


class SilentAudio(AudioError):
    reason = "silent"


class NonFiniteAudio(AudioError):
    reason = "non_finite"


@dataclass(frozen=True)
class _RiffLayout:
    """What the chunk table says: where the samples are and how many bytes it promises."""

    data_offset: int
    data_size: int
    has_fmt: bool


def load_audio(
    source: str | os.PathLike | bytes,
    *,
    sample_rate: int = MODEL_SAMPLE_RATE,
    min_seconds: float = 0.5,
    max_seconds: float = 600.0,
    name: str | None = None,
) -> np.ndarray:
    """Decode a WAV (path or raw bytes) to mono float32 at `sample_rate`, validating it on the way.

    Raises one `AudioError` subclass per problem; a missing path raises FileNotFoundError.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        return _load(io.BytesIO(bytes(source)), len(source), label, sample_rate, min_seconds, max_seconds)
    path = os.fspath(source)
    label = name or path
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return _load(handle, size, label, sample_rate, min_seconds, max_seconds)


def _load(
    stream: BinaryIO, size: int, label: str, sample_rate: int, min_seconds: float, max_seconds: float
) -> np.ndarray:
    if size == 0:
        raise EmptyAudio(label, "the file is empty (0 bytes)")
    _check_riff(stream, size, label)
    stream.seek(0)
    try:
        sound = sf.SoundFile(stream)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnsupportedFormat(label, f"a RIFF/WAVE file libsndfile cannot decode ({exc})") from None
    with sound:
        if sound.subtype not in SUPPORTED_SUBTYPES:
            raise UnsupportedFormat(
                label, f"sample encoding {sound.subtype} is not PCM or float (supported: {sorted(SUPPORTED_SUBTYPES)})"
            )
        native_rate = sound.samplerate
        seconds = sound.frames / native_rate
        if seconds > max_seconds:
            raise TooLong(label, f"{seconds:.1f} s is longer than the {max_seconds:g} s limit")
        if seconds < min_seconds:
            raise TooShort(label, f"{seconds:.3f} s is shorter than the {min_seconds:g} s minimum")
        try:
            samples = sound.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise TruncatedAudio(label, f"the sample data cannot be read ({exc})") from None
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    _check_content(mono, label)
    if native_rate != sample_rate:
        mono = _resample(mono, native_rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _check_riff(stream: BinaryIO, size: int, label: str) -> None:
    """Refuse what is not a WAV, and a WAV whose header promises more bytes than the file holds."""
    head = stream.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        raise NotAWav(label, f"not a WAV file (starts with {head[:12]!r}; expected a RIFF/WAVE header)")
    layout = _walk_chunks(stream, size, big_endian=head[:4] == b"RIFX")
    if layout is None or not layout.has_fmt:
        raise TruncatedAudio(label, f"the WAV header is incomplete (no fmt/data chunk in {size} bytes)")
    available = size - layout.data_offset
    if layout.data_size != _UNKNOWN_SIZE and layout.data_size > available:
        raise TruncatedAudio(
            label, f"the header promises {layout.data_size} bytes of audio but only {available} are present"
        )


def _walk_chunks(stream: BinaryIO, size: int, *, big_endian: bool) -> _RiffLayout | None:
    """Walk the RIFF chunk table up to the data chunk; None when the table ends before it."""
    fmt = ">4sI" if big_endian else "<4sI"
    offset, has_fmt = 12, False
    while offset + 8 <= size:
        stream.seek(offset)
        chunk_id, chunk_size = struct.unpack(fmt, stream.read(8))
        if chunk_id == b"data":
            return _RiffLayout(data_offset=offset + 8, data_size=chunk_size, has_fmt=has_fmt)
        has_fmt = has_fmt or chunk_id == b"fmt "
        offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _check_content(mono: np.ndarray, label: str) -> None:
    finite = np.isfinite(mono)
    if not finite.all():
        raise NonFiniteAudio(label, f"{int(mono.size - finite.sum())} samples are NaN or infinite")
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < SILENCE_PEAK:
        raise SilentAudio(label, f"the recording is silent (peak amplitude {peak:.2e})")


def _resample(mono: np.ndarray, native_rate: int, sample_rate: int) -> np.ndarray:
    import librosa  # heavy import; only recordings at another rate need it

    return librosa.resample(mono, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")
