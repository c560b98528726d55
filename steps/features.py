"""Log-mel features over fixed windows: the one feature code shared by training and serving.

A recording becomes a stack of overlapping windows, each a (frames, mels) log-mel image, so a
recording of any length gives a fixed-shape model input per window, and the recording-level
prediction is the mean over its windows.

Two implementations compute the same numbers:
- `log_mel_windows`: the fast path used by preprocessing and serving. It builds the mel filterbank
  once per config (`functools.lru_cache`), runs ONE batched real FFT over strided frames of the whole
  recording (same periodic Hann window, centring and zero padding as `librosa.stft`), applies the
  filterbank as a single matmul, takes the log, and slices windows as views.
- `log_mel_windows_librosa`: the reference, written the way a librosa user would
  (`librosa.feature.melspectrogram` + `librosa.power_to_db`), used by tests and `samay bench features`.

The two agree within `relative_difference(ours, reference) <= 1e-4`, where the relative difference
is `max|a - b| / max(max|b|, 1)` over the dB values (dB values live in about [-120, 40]; the `1`
floor stops near-zero dB cells from inflating a ratio whose absolute error is ~1e-5 dB).
"""
from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import scipy.fft

from steps.audio import MODEL_SAMPLE_RATE, load_audio

logger = logging.getLogger(__name__)

FEATURES_FILENAME = "features.json"
# Frames per FFT/matmul block: keeps the float64 temporaries (~0.5 MB) in the CPU cache.
BLOCK_FRAMES = 128


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the features; saved beside the model as features.json.

    Defaults: 64 ms FFT frames with a 32 ms hop at 4 kHz, 32 mel bands up to Nyquist, 4 s windows
    every 2 s. A 20 s recording gives 9 windows x 126 frames x 32 mels = 36,288 floats, small
    enough to send as TF-Serving REST JSON within the serving latency budget.
    """

    sample_rate: int = MODEL_SAMPLE_RATE
    n_fft: int = 256
    hop_length: int = 128
    n_mels: int = 32
    fmin: float = 50.0
    fmax: float = MODEL_SAMPLE_RATE / 2
    window_seconds: float = 4.0
    window_hop_seconds: float = 2.0
    top_db: float = 80.0
    amin: float = 1e-10
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("n_fft, hop_length and n_mels must be positive")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, fmax={self.fmax}")
        if self.window_seconds * self.sample_rate < self.n_fft:
            raise ValueError("window_seconds must hold at least one FFT frame")
        if self.window_hop_seconds <= 0:
            raise ValueError("window_hop_seconds must be positive")

    @property
    def frames_per_window(self) -> int:
        """STFT frames in one window: a recording exactly window_seconds long is one window."""
        return 1 + int(round(self.window_seconds * self.sample_rate)) // self.hop_length

    @property
    def frames_per_window_hop(self) -> int:
        return max(1, int(round(self.window_hop_seconds * self.sample_rate)) // self.hop_length)

    def n_windows(self, n_samples: int) -> int:
        """How many windows a recording of n_samples gives (0 when shorter than one window)."""
        n_frames = 1 + n_samples // self.hop_length
        if n_frames < self.frames_per_window:
            return 0
        return 1 + (n_frames - self.frames_per_window) // self.frames_per_window_hop

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Build from a dict, refusing unknown keys so a features.json from a newer version is not misread."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature config keys: {sorted(unknown)}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write features.json (path may be a folder or the file itself)."""
        path = Path(path)
        if path.is_dir():
            path = path / FEATURES_FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureConfig":
        path = Path(path)
        if path.is_dir():
            path = path / FEATURES_FILENAME
        return cls.from_dict(json.loads(path.read_text()))


# Slaney mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


@functools.lru_cache(maxsize=16)
def _mel_filterbank_t(config: FeatureConfig) -> np.ndarray:
    """(n_fft//2+1, n_mels) float64 mel filterbank, transposed for `power @ fb`; built once per config.

    The same triangles and Slaney area normalisation as `librosa.filters.mel` (a test holds them
    equal), written in numpy so the fast path never imports librosa: its first call JIT-compiles
    for seconds, which a serving container would pay at start-up.
    """
    fft_freqs = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    mel_edges = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(config.fmax), config.n_mels + 2))
    widths = np.diff(mel_edges)
    ramps = mel_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_edges[2:] - mel_edges[:-2]))[:, None]
    return np.ascontiguousarray(weights.T)


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, the one librosa.stft uses (`scipy.signal.get_window('hann', n, fftbins=True)`)."""
    n = np.arange(n_fft, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)


def _check(audio: np.ndarray, config: FeatureConfig, dtype: type) -> np.ndarray:
    """Refuse what is not a mono recording at least one window long."""
    audio = np.asarray(audio, dtype=dtype)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    if config.n_windows(audio.shape[0]) == 0:
        raise ValueError(
            f"audio of {audio.shape[0] / config.sample_rate:.2f} s is shorter than one "
            f"{config.window_seconds:g} s feature window"
        )
    return audio


def _power_scale(audio: np.ndarray, config: FeatureConfig) -> float:
    """1/peak^2 when peak-normalising (stethoscopes differ widely in gain), else 1.

    Applied to the power spectrum rather than the samples: dividing float32 samples by the peak
    rounds every sample, and that rounding noise shows in bins 80 dB down.
    """
    peak = float(np.max(np.abs(audio))) if config.normalize else 0.0
    return 1.0 / (peak * peak) if peak > 0 else 1.0


def _to_db(mel_power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """power_to_db(ref=1.0, amin, top_db) in place: the clip floor is max - top_db over the whole recording."""
    np.maximum(mel_power, config.amin, out=mel_power)
    np.log10(mel_power, out=mel_power)
    mel_power *= 10.0
    if config.top_db is not None:
        np.maximum(mel_power, mel_power.max() - config.top_db, out=mel_power)
    return mel_power


def _windows(log_mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(frames, mels) -> (n_windows, frames_per_window, mels) as a strided view (no copy)."""
    n_windows = 1 + (log_mel.shape[0] - config.frames_per_window) // config.frames_per_window_hop
    step_t, step_m = log_mel.strides
    return np.lib.stride_tricks.as_strided(
        log_mel,
        shape=(n_windows, config.frames_per_window, log_mel.shape[1]),
        strides=(step_t * config.frames_per_window_hop, step_t, step_m),
        writeable=False,
    )


def log_mel_frames(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(n_frames, n_mels) float32 log-mel of a whole recording: batched rfft + filterbank matmul.

    Frames are strided views of the padded signal (no framing copy) and go through the FFT and the
    matmul in blocks of BLOCK_FRAMES, so the float64 temporaries stay in the CPU cache: one pass
    over a whole 20 s recording at once is ~2.5x slower than the same work in cache-sized blocks.
    """
    audio = _check(audio, config, np.float32)
    padded = np.pad(audio, config.n_fft // 2, mode="constant")
    n_frames = 1 + (padded.shape[0] - config.n_fft) // config.hop_length
    frames = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_frames, config.n_fft),
        strides=(padded.strides[0] * config.hop_length, padded.strides[0]),
        writeable=False,
    )
    window, filterbank = _hann(config.n_fft), _mel_filterbank_t(config)
    mel_power = np.empty((n_frames, config.n_mels), dtype=np.float32)
    for start in range(0, n_frames, BLOCK_FRAMES):
        # float64 FFT: in float32, bins 60-80 dB below a frame's peak (kept by top_db=80) carry
        # ~0.01 dB of rounding noise. scipy's pocketfft is several times faster than np.fft here.
        spectrum = scipy.fft.rfft(frames[start:start + BLOCK_FRAMES] * window, axis=1, overwrite_x=True, workers=1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        mel_power[start:start + BLOCK_FRAMES] = power @ filterbank
    mel_power *= np.float32(_power_scale(audio, config))
    return _to_db(mel_power, config)


def log_mel_windows(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """float32 (n_windows, frames_per_window, n_mels): the fast features used by training and serving.

    The result is a read-only strided view over the recording's log-mel frames (windows overlap);
    use np.ascontiguousarray for a standalone copy.
    """
    return _windows(log_mel_frames(audio, config), config)


def log_mel_windows_librosa(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The same features by plain librosa calls (in float64, the exact values): the reference for tests and the benchmark."""
    import librosa

    audio = _check(audio, config, np.float64)
    if config.normalize:
        audio = librosa.util.normalize(audio)
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        power=2.0,
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=config.amin, top_db=config.top_db)
    frames = np.ascontiguousarray(log_mel.T, dtype=np.float32)
    return _windows(frames, config)


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """max|a - b| / max(max|b|, 1): the agreement measure documented in the module docstring."""
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape:
        raise ValueError(f"shape mismatch: {ours.shape} vs {reference.shape}")
    return float(np.max(np.abs(ours - reference)) / max(float(np.max(np.abs(reference))), 1.0))


def extract_windows(
    source: str | os.PathLike | bytes, config: FeatureConfig, *, name: str | None = None
) -> np.ndarray:
    """Load a WAV (path or bytes), validate it (at least one window long) and compute its windows.

    Raises steps.audio.AudioError subclasses for bad audio.
    """
    audio = load_audio(source, sample_rate=config.sample_rate, min_seconds=config.window_seconds, name=name)
    return log_mel_windows(audio, config)
