"""`samay bench inference`: endpoint latency and throughput, and the inference Lambda's import time.

Measured against whatever endpoint the environment points at (the local cloud after `samay demo`,
or AWS), with one 20 s recording: a real one cut to 20 s when ../shared/data/lung-sounds is there,
else a synthetic one. Latency is client-side wall time of InvokeEndpoint, sequential requests
after a warm-up; throughput uses a few concurrent clients. The import time is measured in fresh
interpreters, the way a Lambda cold start pays it.
"""
from __future__ import annotations

import io
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from botocore.exceptions import ClientError

from lambdas.shared import aws

SECONDS = 20.0
RATE = 4000


class BenchError(RuntimeError):
    """The benchmark cannot run (no endpoint in service); the message says what to do."""


@dataclass(frozen=True)
class InferenceFigures:
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    handler_import_ms: float
    requests: int
    source: str

    def figures(self) -> dict[str, float]:
        return {
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "throughput_rps": self.throughput_rps,
            "handler_import_ms": self.handler_import_ms,
        }


def recording(data_dir: Path | None) -> tuple[bytes, str]:
    """A 20 s, 4 kHz, 16-bit WAV: the longest real recording cut to 20 s, else synthetic breath noise."""
    if data_dir is not None and (data_dir / "labels.csv").is_file():
        candidates = sorted(data_dir.glob("kauh/audio/*.wav"), key=lambda p: sf.info(p).duration, reverse=True)
        for path in candidates:
            samples, rate = sf.read(path, dtype="float32", always_2d=True)
            if len(samples) >= SECONDS * rate:
                clip = samples[: int(SECONDS * rate), 0]
                buffer = io.BytesIO()
                sf.write(buffer, clip, rate, subtype="PCM_16", format="WAV")
                return buffer.getvalue(), f"{path.name} (first {SECONDS:.0f} s)"
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * RATE)) / RATE
    signal = rng.normal(0, 0.1, t.size) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t)) + 0.05 * np.sin(2 * np.pi * 400 * t)
    buffer = io.BytesIO()
    sf.write(buffer, signal.astype(np.float32), RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue(), "synthetic"


def _invoke(endpoint: str, body: bytes) -> float:
    start = time.perf_counter()
    aws.client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, ContentType="audio/wav", Body=body)["Body"].read()
    return (time.perf_counter() - start) * 1000.0


def _check_endpoint(endpoint: str) -> None:
    try:
        status = aws.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    except ClientError as err:
        raise BenchError(f"endpoint {endpoint} not found ({err.response['Error']['Message']}): run `samay demo` first") from err
    if status != "InService":
        raise BenchError(f"endpoint {endpoint} is {status}, not InService")


def handler_import_ms(runs: int = 3) -> float:
    """Best of `runs` fresh interpreters importing lambdas.inference.app (what a cold start pays)."""
    code = "import time; t = time.perf_counter(); import lambdas.inference.app; print((time.perf_counter() - t) * 1000)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
    return min(times)


def bench_inference(endpoint: str, data_dir: Path | None, *, requests: int = 100, clients: int = 4) -> InferenceFigures:
    _check_endpoint(endpoint)
    body, source = recording(data_dir)
    for _ in range(5):
        _invoke(endpoint, body)
    latencies = sorted(_invoke(endpoint, body) for _ in range(requests))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda _: _invoke(endpoint, body), range(requests)))
    throughput = requests / (time.perf_counter() - start)
    return InferenceFigures(
        p50_ms=round(statistics.median(latencies), 1),
        p99_ms=round(float(np.percentile(latencies, 99)), 1),
        throughput_rps=round(throughput, 1),
        handler_import_ms=round(handler_import_ms(), 1),
        requests=requests,
        source=source,
    )
