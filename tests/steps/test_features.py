"""The fast log-mel windows agree with plain librosa calls, have the documented shapes, and round-trip their config."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from steps.audio import AudioError, load_audio
from steps.features import (
    FeatureConfig,
    extract_windows,
    log_mel_windows,
    log_mel_windows_librosa,
    relative_difference,
)
from tests.steps.conftest import synth_audio

TOLERANCE = 1e-4


@pytest.mark.parametrize("seconds", [4.0, 7.3, 20.0])
def test_fast_features_match_librosa_on_noise(seconds: float) -> None:
    config = FeatureConfig()
    audio = np.random.default_rng(1).standard_normal(int(seconds * config.sample_rate)).astype(np.float32) * 0.2

    ours, reference = log_mel_windows(audio, config), log_mel_windows_librosa(audio, config)

    assert ours.shape == reference.shape
    assert ours.dtype == np.float32
    assert relative_difference(ours, reference) <= TOLERANCE


@pytest.mark.parametrize("diagnosis", ["Normal", "Asthma", "COPD"])
def test_fast_features_match_librosa_on_lung_like_sounds(diagnosis: str) -> None:
    config = FeatureConfig(n_mels=40, top_db=60.0)
    audio = synth_audio(diagnosis, 12.0, config.sample_rate, np.random.default_rng(2))

    assert relative_difference(log_mel_windows(audio, config), log_mel_windows_librosa(audio, config)) <= TOLERANCE


@pytest.mark.realdata
def test_fast_features_match_librosa_on_real_recordings(lung_sounds_dir) -> None:
    config = FeatureConfig()
    for name in ["kauh/audio/BP1.wav", "kauh/audio/EP76.wav"]:
        audio = load_audio(lung_sounds_dir / name, sample_rate=config.sample_rate)
        assert relative_difference(log_mel_windows(audio, config), log_mel_windows_librosa(audio, config)) <= TOLERANCE


def test_relative_difference_detects_a_real_difference() -> None:
    reference = np.full((2, 3), -40.0)
    changed = reference.copy()
    changed[1, 2] = -40.1

    assert relative_difference(changed, reference) == pytest.approx(0.1 / 40)
    with pytest.raises(ValueError, match="shape mismatch"):
        relative_difference(changed[0], reference)


@pytest.mark.parametrize(("seconds", "expected"), [(4.0, 1), (5.9, 1), (6.0, 2), (20.0, 9), (21.0, 9), (22.0, 10)])
def test_window_count_for_known_durations(seconds: float, expected: int) -> None:
    config = FeatureConfig()
    audio = np.random.default_rng(3).standard_normal(int(seconds * config.sample_rate)).astype(np.float32)

    windows = log_mel_windows(audio, config)

    assert windows.shape == (expected, config.frames_per_window, config.n_mels)
    assert config.n_windows(audio.size) == expected


def test_twenty_second_recording_stays_under_the_serving_payload_budget() -> None:
    config = FeatureConfig()
    assert config.n_windows(20 * config.sample_rate) * config.frames_per_window * config.n_mels < 50_000


def test_windows_are_overlapping_slices_of_one_log_mel_image() -> None:
    config = FeatureConfig()
    audio = np.random.default_rng(4).standard_normal(10 * config.sample_rate).astype(np.float32)

    windows = log_mel_windows(audio, config)
    hop = config.frames_per_window_hop

    np.testing.assert_array_equal(windows[0, hop:], windows[1, : config.frames_per_window - hop])


def test_audio_shorter_than_a_window_is_refused() -> None:
    config = FeatureConfig()
    with pytest.raises(ValueError, match="shorter than one 4 s feature window"):
        log_mel_windows(np.ones(3 * config.sample_rate, dtype=np.float32), config)


def test_stereo_array_is_refused() -> None:
    with pytest.raises(ValueError, match="mono 1-D"):
        log_mel_windows(np.ones((2, 20000), dtype=np.float32), FeatureConfig())


def test_peak_normalisation_makes_features_gain_invariant() -> None:
    config = FeatureConfig()
    audio = np.random.default_rng(5).standard_normal(5 * config.sample_rate).astype(np.float32)

    np.testing.assert_allclose(log_mel_windows(audio, config), log_mel_windows(audio * 0.01, config), atol=1e-3)


def test_config_round_trips_through_features_json(tmp_path) -> None:
    config = FeatureConfig(n_mels=40, window_seconds=3.0, window_hop_seconds=1.5)

    path = config.save(tmp_path)

    assert path.name == "features.json"
    assert FeatureConfig.load(tmp_path) == config
    assert FeatureConfig.load(path) == config
    assert FeatureConfig.from_dict(config.to_dict()) == config


def test_config_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown feature config keys"):
        FeatureConfig.from_dict({**FeatureConfig().to_dict(), "n_mfcc": 13})
    with pytest.raises(ValueError, match="fmax"):
        FeatureConfig(fmax=3000.0)
    with pytest.raises(ValueError, match="window_hop_seconds"):
        FeatureConfig(window_hop_seconds=0)


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_extract_windows_reads_wav_bytes_and_paths_alike(tmp_path) -> None:
    config = FeatureConfig()
    data = _wav_bytes(synth_audio("Asthma", 8.0, 8000, np.random.default_rng(6)), 8000)
    path = tmp_path / "a.wav"
    path.write_bytes(data)

    from_bytes = extract_windows(data, config, name="a.wav")
    from_path = extract_windows(path, config)

    np.testing.assert_array_equal(from_bytes, from_path)
    np.testing.assert_array_equal(from_path, log_mel_windows(load_audio(path), config))


def test_extract_windows_rejects_a_recording_shorter_than_one_window() -> None:
    data = _wav_bytes(synth_audio("Normal", 2.0, 4000, np.random.default_rng(7)), 4000)

    with pytest.raises(AudioError) as err:
        extract_windows(data, FeatureConfig(), name="short.wav")

    assert err.value.reason == "too_short"
    assert "short.wav" in str(err.value)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(n_fft=512, n_mels=64, fmin=0.0, fmax=1500.0)])
def test_cached_mel_filterbank_equals_librosa(config: FeatureConfig) -> None:
    import librosa

    from steps.features import _mel_filterbank_t

    expected = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                   fmin=config.fmin, fmax=config.fmax)
    np.testing.assert_allclose(_mel_filterbank_t(config).T, expected, rtol=1e-5, atol=1e-8)
    assert _mel_filterbank_t(config) is _mel_filterbank_t(config)


def test_feature_benchmark_reports_the_three_figures_on_synthetic_audio() -> None:
    from steps.benchmark import run_feature_benchmark, synthetic_recordings

    config = FeatureConfig()
    recordings = synthetic_recordings(config, count=2, seconds=6.0)

    result = run_feature_benchmark(recordings, config, repeats=1, source="synthetic")

    figures = result.figures()
    assert set(figures) == {"speedup_vs_librosa", "max_rel_diff", "audio_seconds_per_second"}
    assert figures["max_rel_diff"] <= TOLERANCE
    assert figures["speedup_vs_librosa"] > 0 and figures["audio_seconds_per_second"] > 0
    assert result.recordings == 2 and result.audio_seconds == pytest.approx(12.0)
