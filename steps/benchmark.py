"""Feature-extraction benchmark: our log-mel windows against plain librosa calls, in one run.

Both implementations run single-threaded (threadpoolctl caps BLAS/OpenMP at one thread; our FFT
is pinned to one worker) on the same recordings, interleaved recording by recording so that a
noisy neighbour slows both alike; each recording's time is the best of `repeats` runs. The figures:
- speedup_vs_librosa: total librosa time / total time of ours;
- max_rel_diff: the worst `steps.features.relative_difference` over all recordings;
- audio_seconds_per_second: seconds of audio our implementation turns into features per second.
"""
from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steps.audio import AudioError, load_audio
from steps.features import FeatureConfig, log_mel_windows, log_mel_windows_librosa, relative_difference

logger = logging.getLogger(__name__)


@dataclass
class FeatureBenchmark:
    speedup_vs_librosa: float
    max_rel_diff: float
    audio_seconds_per_second: float
    recordings: int
    audio_seconds: float
    source: str

    def figures(self) -> dict[str, float]:
        """The three figures `samay bench features --json` prints."""
        return {
            "speedup_vs_librosa": round(self.speedup_vs_librosa, 3),
            "max_rel_diff": float(f"{self.max_rel_diff:.3g}"),
            "audio_seconds_per_second": round(self.audio_seconds_per_second, 1),
        }


def real_recordings(data_dir: Path, config: FeatureConfig) -> list[np.ndarray]:
    """Every recording listed in <data_dir>/labels.csv that is at least one window long."""
    with (data_dir / "labels.csv").open(newline="") as fh:
        files = [row["file"] for row in csv.DictReader(fh)]
    recordings = []
    for name in files:
        try:
            recordings.append(
                load_audio(data_dir / name, sample_rate=config.sample_rate, min_seconds=config.window_seconds)
            )
        except AudioError as err:
            logger.info("benchmark skips %s (%s)", name, err.reason)
    return recordings


def synthetic_recordings(config: FeatureConfig, count: int = 40, seconds: float = 20.0, seed: int = 0) -> list[np.ndarray]:
    """Real-length stand-ins: breathing-modulated noise with wheeze-like tones and crackle clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * config.sample_rate)) / config.sample_rate
    recordings = []
    for _ in range(count):
        envelope = np.sin(2 * np.pi * rng.uniform(0.2, 0.35) * t) ** 2
        audio = 0.05 * rng.standard_normal(t.size) * (0.3 + envelope)
        audio += 0.2 * rng.uniform() * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) * envelope
        clicks = rng.integers(0, t.size, size=rng.integers(0, 60))
        audio[clicks] += rng.uniform(-0.8, 0.8, size=clicks.size)
        recordings.append(audio.astype(np.float32))
    return recordings


def _best_time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_feature_benchmark(
    recordings: list[np.ndarray], config: FeatureConfig, *, repeats: int = 5, source: str = ""
) -> FeatureBenchmark:
    """Time ours and librosa on the same recordings, single-threaded, and check they agree."""
    from threadpoolctl import threadpool_limits

    if not recordings:
        raise ValueError("no recordings to benchmark")
    with threadpool_limits(limits=1):
        max_diff = max(
            relative_difference(log_mel_windows(a, config), log_mel_windows_librosa(a, config)) for a in recordings
        )
        ours = np.full(len(recordings), np.inf)
        reference = np.full(len(recordings), np.inf)
        for repeat in range(repeats):
            for i, audio in enumerate(recordings):
                runs = [(ours, log_mel_windows), (reference, log_mel_windows_librosa)]
                for times, fn in runs if repeat % 2 == 0 else runs[::-1]:
                    times[i] = min(times[i], _best_time(lambda: fn(audio, config)))
    audio_seconds = sum(a.size for a in recordings) / config.sample_rate
    return FeatureBenchmark(
        speedup_vs_librosa=float(reference.sum() / ours.sum()),
        max_rel_diff=max_diff,
        audio_seconds_per_second=float(audio_seconds / ours.sum()),
        recordings=len(recordings),
        audio_seconds=audio_seconds,
        source=source,
    )


def bench_features(data_dir: Path | None, *, repeats: int = 5) -> FeatureBenchmark:
    """Benchmark on the real recordings in data_dir when it holds labels.csv, else on synthetic ones."""
    config = FeatureConfig()
    if data_dir is not None and (data_dir / "labels.csv").is_file():
        return run_feature_benchmark(real_recordings(data_dir, config), config, repeats=repeats, source=str(data_dir))
    return run_feature_benchmark(synthetic_recordings(config), config, repeats=repeats, source="synthetic")
