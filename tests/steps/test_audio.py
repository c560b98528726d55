"""load_audio: every PCM WAV decodes to mono float32 at the model rate; every bad input gets its own error."""
from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from steps import audio
from steps.audio import (
    MODEL_SAMPLE_RATE,
    AudioError,
    EmptyAudio,
    NonFiniteAudio,
    NotAWav,
    SilentAudio,
    TooLong,
    TooShort,
    TruncatedAudio,
    UnsupportedFormat,
    load_audio,
)


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"])
def test_every_pcm_and_float_encoding_decodes_to_the_same_signal(tmp_path, subtype):
    original = tone(2.0, MODEL_SAMPLE_RATE)
    path = write(tmp_path / f"{subtype}.wav", wav_bytes(original, MODEL_SAMPLE_RATE, subtype))

    decoded = load_audio(path)

    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert decoded.shape == original.shape
    assert np.max(np.abs(decoded - original)) < (1e-2 if subtype == "PCM_U8" else 1e-4)


@pytest.mark.parametrize("rate", [4000, 8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_to_the_model_rate(tmp_path, rate):
    path = write(tmp_path / "a.wav", wav_bytes(tone(3.0, rate, freq=300.0), rate, "PCM_24"))

    decoded = load_audio(path)

    assert abs(decoded.size - 3 * MODEL_SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(decoded))
    peak_hz = np.argmax(spectrum) * MODEL_SAMPLE_RATE / decoded.size
    assert abs(peak_hz - 300.0) < 2.0


def test_other_target_rate(tmp_path):
    path = write(tmp_path / "a.wav", wav_bytes(tone(1.0, 4000), 4000))

    assert load_audio(path, sample_rate=8000).size == 8000


def test_stereo_is_mixed_down_to_mono(tmp_path):
    left = tone(1.0, 4000, freq=200.0)
    right = tone(1.0, 4000, freq=500.0)
    path = write(tmp_path / "stereo.wav", wav_bytes(np.stack([left, right], axis=1), 4000, "FLOAT"))

    decoded = load_audio(path)

    np.testing.assert_allclose(decoded, (left + right) / 2, atol=1e-6)


def test_bytes_and_path_give_the_same_samples(tmp_path):
    data = wav_bytes(tone(1.5, 22050), 22050, "PCM_16")
    path = write(tmp_path / "a.wav", data)

    np.testing.assert_array_equal(load_audio(data), load_audio(path))


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nope.wav")


def assert_audio_error(excinfo: pytest.ExceptionInfo, cls: type[AudioError], reason: str, source: str) -> None:
    err = excinfo.value
    assert type(err) is cls
    assert isinstance(err, ValueError)
    assert err.reason == reason
    assert err.source == source
    assert str(err).startswith(f"{source}: ")


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.wav", b"")
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, EmptyAudio, "empty", str(path))
    assert "empty" in str(excinfo.value)


@pytest.mark.parametrize(
    "content",
    [
        b"patient_id,diagnosis\nkauh_1,Asthma\n",
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 100,  # an MP3
        b"RIFF\x24\x00\x00\x00AVI LIST" + b"\x00" * 64,  # RIFF, but a video
        b"RIF",
    ],
    ids=["text", "mp3", "riff-avi", "three-bytes"],
)
def test_not_a_wav(tmp_path, content):
    path = write(tmp_path / "recording.wav", content)
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, NotAWav, "not_wav", str(path))


def test_truncated_data_chunk(tmp_path):
    data = wav_bytes(tone(2.0, 4000), 4000)
    path = write(tmp_path / "cut.wav", data[: len(data) // 2])
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, TruncatedAudio, "truncated", str(path))
    assert "promises" in str(excinfo.value)


def test_truncated_inside_the_header(tmp_path):
    data = wav_bytes(tone(2.0, 4000), 4000)
    path = write(tmp_path / "header.wav", data[:30])
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, TruncatedAudio, "truncated", str(path))


def test_compressed_wav_is_unsupported(tmp_path):
    path = write(tmp_path / "ulaw.wav", wav_bytes(tone(2.0, 8000), 8000, "ULAW"))
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, UnsupportedFormat, "unsupported_format", str(path))
    assert "ULAW" in str(excinfo.value)


def test_unknown_format_tag_is_unsupported(tmp_path):
    data = bytearray(wav_bytes(tone(2.0, 4000), 4000))
    assert data[20:22] == struct.pack("<H", 1)  # WAVE_FORMAT_PCM in the fmt chunk
    data[20:22] = struct.pack("<H", 0x1234)
    path = write(tmp_path / "odd.wav", bytes(data))
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, UnsupportedFormat, "unsupported_format", str(path))


def test_too_short(tmp_path):
    path = write(tmp_path / "blip.wav", wav_bytes(tone(0.2, 4000), 4000))
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, min_seconds=0.5)
    assert_audio_error(excinfo, TooShort, "too_short", str(path))
    assert "0.200 s" in str(excinfo.value)


def test_no_samples_at_all_is_too_short(tmp_path):
    path = write(tmp_path / "nothing.wav", wav_bytes(np.zeros(0), 4000))
    with pytest.raises(TooShort):
        load_audio(path)


def test_too_long_is_refused_from_the_header_before_decoding(tmp_path, monkeypatch):
    seconds = 700
    header = wav_bytes(np.zeros(0), 4000)  # 44-byte header with an empty data chunk
    body = bytes(seconds * 4000 * 2)
    riff = bytearray(header)
    riff[4:8] = struct.pack("<I", 36 + len(body))
    riff[40:44] = struct.pack("<I", len(body))
    path = write(tmp_path / "marathon.wav", bytes(riff) + body)

    def no_decoding(*args, **kwargs):
        raise AssertionError("samples were decoded before the length check")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, max_seconds=600)
    assert_audio_error(excinfo, TooLong, "too_long", str(path))
    assert "700.0 s" in str(excinfo.value)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_silent(tmp_path, subtype):
    path = write(tmp_path / "quiet.wav", wav_bytes(np.zeros(8000), 4000, subtype))
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, SilentAudio, "silent", str(path))


def test_one_lsb_of_16_bit_noise_is_not_silent(tmp_path):
    lsb = np.where(np.arange(8000) % 2 == 0, 1, -1) / 32768.0
    path = write(tmp_path / "faint.wav", wav_bytes(lsb, 4000, "PCM_16"))

    assert load_audio(path).size == 8000


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples(tmp_path, bad):
    samples = tone(1.0, 4000).astype(np.float32)
    samples[100:110] = bad
    path = write(tmp_path / "nan.wav", wav_bytes(samples, 4000, "FLOAT"))
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    assert_audio_error(excinfo, NonFiniteAudio, "non_finite", str(path))
    assert "10 samples" in str(excinfo.value)


def test_bytes_errors_use_the_given_name():
    with pytest.raises(NotAWav) as excinfo:
        load_audio(b"hello", name="upload-42.wav")
    assert excinfo.value.source == "upload-42.wav"
    assert str(excinfo.value).startswith("upload-42.wav: ")


def test_bytes_errors_without_a_name_still_say_what_the_input_was():
    with pytest.raises(EmptyAudio) as excinfo:
        load_audio(b"")
    assert excinfo.value.source == "<bytes>"


def test_errors_survive_pickling_for_worker_processes():
    err = TruncatedAudio("a.wav", "cut short")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is TruncatedAudio and clone.source == "a.wav" and str(clone) == str(err)


def test_every_error_class_has_its_own_reason_code():
    classes = [EmptyAudio, NotAWav, TruncatedAudio, UnsupportedFormat, TooShort, TooLong, SilentAudio, NonFiniteAudio]
    assert [c.reason for c in classes] == [
        "empty", "not_wav", "truncated", "unsupported_format", "too_short", "too_long", "silent", "non_finite",
    ]
    assert all(issubclass(c, audio.AudioError) for c in classes)
