"""WAV files built in memory for the scoring tests (header layouts the endpoint must accept or refuse)."""
from __future__ import annotations

import math
import struct

PCM, IEEE_FLOAT, EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


def wav_bytes(
    seconds: float = 2.0,
    *,
    sample_rate: int = 4000,
    bits: int = 16,
    channels: int = 1,
    format_code: int = PCM,
    extensible: bool = False,
    extra_chunk: bool = False,
) -> bytes:
    """A RIFF/WAVE file holding a 200 Hz tone; `extensible` writes WAVE_FORMAT_EXTENSIBLE around `format_code`."""
    frames = int(seconds * sample_rate)
    width = bits // 8
    samples = bytearray()
    for i in range(frames):
        value = 0.5 * math.sin(2 * math.pi * 200 * i / sample_rate)
        if format_code == IEEE_FLOAT:
            sample = struct.pack("<f" if bits == 32 else "<d", value)
        elif bits == 8:
            sample = bytes([int(128 + 127 * value)])
        else:
            sample = int(value * (2 ** (bits - 1) - 1)).to_bytes(width, "little", signed=True)
        samples += sample * channels
    block_align = channels * width
    fmt = struct.pack("<HHIIHH", EXTENSIBLE if extensible else format_code, channels, sample_rate, sample_rate * block_align, block_align, bits)
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", format_code) + guid_tail
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
    chunks += b"data" + struct.pack("<I", len(samples)) + bytes(samples)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
