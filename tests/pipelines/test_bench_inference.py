"""`samay bench inference` pieces that need no endpoint; the full run is in tests/e2e/test_demo.py."""
from __future__ import annotations

import io

import pytest
import soundfile as sf

from pipelines.bench_inference import BenchError, _check_endpoint, handler_import_ms, recording


def test_recording_is_20_seconds_of_16_bit_audio_from_real_data(lung_sounds_dir) -> None:
    body, source = recording(lung_sounds_dir)
    info = sf.info(io.BytesIO(body))
    assert info.duration == pytest.approx(20.0) and info.subtype == "PCM_16"
    assert source.endswith("(first 20 s)")


def test_recording_falls_back_to_synthetic_audio(tmp_path) -> None:
    body, source = recording(tmp_path)
    assert source == "synthetic"
    assert sf.info(io.BytesIO(body)).duration == pytest.approx(20.0)


def test_handler_import_is_measured_in_a_fresh_interpreter() -> None:
    assert handler_import_ms(runs=1) > 0


def test_missing_endpoint_is_a_clear_error(aws_endpoint: str) -> None:
    with pytest.raises(BenchError, match="run `samay demo` first"):
        _check_endpoint("samay-lung-sound")
