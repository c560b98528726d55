"""SageMaker TensorFlow-Serving handler: raw WAV in, DESIGN 4.7 prediction JSON out.

Shipped in the model artifact as code/inference.py, beside code/steps/{audio,features}.py copied
from the training job's own package, so the endpoint computes exactly the training features.
Contract (the TFS container and the local endpoint host call it the same way):
- input_handler(data, context): data.read() = WAV bytes, context.request_content_type = "audio/wav"
  -> TF-Serving REST body {"instances": [window, ...]} (one (frames, mels) window per instance);
- output_handler(response, context): response.status_code / response.content
  {"predictions": [[p_class, ...] per window]} -> ({"label", "probabilities", "model_version",
  "windows"} JSON, "application/json"). The recording's probabilities are the mean over windows.
Bad audio raises a ValueError subclass (steps.audio.AudioError) whose message names the problem;
the host answers it with HTTP 400.
"""
from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

CODE_DIR = Path(__file__).resolve().parent
ARTIFACT_DIR = CODE_DIR.parent
if (CODE_DIR / "steps").is_dir() and str(CODE_DIR) not in sys.path:
    sys.path.insert(0, str(CODE_DIR))  # the artifact's own feature code, before any installed copy

import numpy as np  # noqa: E402

from steps.features import FeatureConfig, extract_windows  # noqa: E402

logger = logging.getLogger(__name__)

WAV_CONTENT_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave"})
# 9 significant digits round-trip every float32 exactly, in ~60% of json.dumps' bytes and time.
FLOAT_FORMAT = "%.9g"


class UnsupportedContentType(ValueError):
    """The request is not a WAV upload."""


class ModelServerError(ValueError):
    """TensorFlow Serving answered with an error."""


@functools.lru_cache(maxsize=1)
def artifact() -> tuple[FeatureConfig, tuple[str, ...]]:
    """(feature config, class names) from the artifact root, read once per process."""
    config = FeatureConfig.load(ARTIFACT_DIR / "features.json")
    labels = tuple(json.loads((ARTIFACT_DIR / "labels.json").read_text()))
    return config, labels


@functools.lru_cache(maxsize=1)
def trained_version() -> str | None:
    """The weights' id written at training (training.json); TF Serving's folder version is always 1."""
    try:
        return json.loads((ARTIFACT_DIR / "training.json").read_text()).get("model_version")
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=64)
def _json_template(shape: tuple[int, ...]) -> str:
    """A %-format template for a nested JSON array of this shape."""
    template = FLOAT_FORMAT
    for size in reversed(shape):
        template = "[" + ",".join([template] * size) + "]"
    return template


def instances_json(windows: np.ndarray) -> str:
    """{"instances": windows} as JSON, formatted in one pass (json.dumps is the latency bottleneck)."""
    return '{"instances":' + _json_template(windows.shape) % tuple(windows.ravel().tolist()) + "}"


def input_handler(data, context) -> str:
    """WAV bytes -> TF-Serving REST request body with the recording's log-mel windows."""
    content_type = (getattr(context, "request_content_type", None) or "").split(";")[0].strip().lower()
    if content_type not in WAV_CONTENT_TYPES:
        raise UnsupportedContentType(f"unsupported content type {content_type!r}: send audio/wav")
    payload = data.read() if hasattr(data, "read") else data
    config, _ = artifact()
    windows = extract_windows(payload, config, name="request body")
    return instances_json(windows)


def output_handler(response, context) -> tuple[str, str]:
    """Per-window probabilities -> recording label, class probabilities, model version, window count."""
    if response.status_code != 200:
        raise ModelServerError(f"model server returned {response.status_code}: {response.content[:500]!r}")
    _, labels = artifact()
    predictions = np.asarray(json.loads(response.content)["predictions"], dtype=np.float64)
    if predictions.ndim != 2 or predictions.shape[1] != len(labels) or predictions.shape[0] == 0:
        raise ModelServerError(f"predictions of shape {predictions.shape} do not match {len(labels)} classes")
    probabilities = predictions.mean(axis=0)
    body = {
        "label": labels[int(np.argmax(probabilities))],
        "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probabilities)},
        "model_version": trained_version() or str(getattr(context, "model_version", "") or ""),
        "windows": int(predictions.shape[0]),
    }
    return json.dumps(body), "application/json"
