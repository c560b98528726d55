"""The artifact's TF-Serving handler: same features as training, and a full request through the SavedModel."""
from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import requests
import soundfile as sf

from steps.audio import AudioError
from tests.steps.conftest import DATASET, TrainedRun

# The fields of the SageMaker TensorFlow-Serving container's handler context.
Context = namedtuple("Context", "model_name model_version method rest_uri grpc_uri custom_attributes "
                                "request_content_type accept_header content_length")


def _context(content_type: str = "audio/wav") -> Context:
    return Context("model", "1", "POST", "http://localhost:8501/v1/models/model:predict", None, None,
                   content_type, "application/json", 0)


@pytest.fixture(scope="module")
def handler(trained_run: TrainedRun) -> ModuleType:
    """code/inference.py imported from the trained artifact, as the serving container imports it."""
    spec = importlib.util.spec_from_file_location("artifact_inference", trained_run.model_dir / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_recording(trained_run: TrainedRun) -> tuple[str, bytes]:
    path = sorted((trained_run.splits / "test").glob("*.npz"))[0]
    recording_id = path.stem
    return recording_id, (trained_run.dataset.audio_dir / DATASET / f"{recording_id}.wav").read_bytes()


def test_serving_features_equal_the_features_preprocess_stored(handler: ModuleType, trained_run: TrainedRun) -> None:
    recording_id, wav = _test_recording(trained_run)

    body = handler.input_handler(io.BytesIO(wav), _context())

    served = np.asarray(json.loads(body)["instances"], dtype=np.float32)
    with np.load(trained_run.splits / "test" / f"{recording_id}.npz") as npz:
        np.testing.assert_array_equal(served, npz["windows"])


def _predict(trained_run: TrainedRun, body: str) -> requests.Response:
    """What TF Serving does with the request body: run serving_default and answer REST JSON."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(trained_run.model_dir / "1")).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]
    (predictions,) = serve(**{name: tf.constant(json.loads(body)["instances"], dtype=tf.float32)}).values()
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps({"predictions": predictions.numpy().tolist()}).encode()
    return response


def test_request_through_handler_and_saved_model_returns_the_design_body(handler: ModuleType,
                                                                          trained_run: TrainedRun) -> None:
    _, wav = _test_recording(trained_run)
    body = handler.input_handler(io.BytesIO(wav), _context())

    payload, content_type = handler.output_handler(_predict(trained_run, body), _context())

    labels = json.loads((trained_run.model_dir / "labels.json").read_text())
    result = json.loads(payload)
    assert content_type == "application/json"
    assert set(result) == {"label", "probabilities", "model_version", "windows"}
    assert result["label"] in labels and list(result["probabilities"]) == labels
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    assert result["windows"] == len(json.loads(body)["instances"])
    training = json.loads((trained_run.model_dir / "training.json").read_text())
    assert result["model_version"] == training["model_version"]
    assert len(result["model_version"]) == 12 and result["model_version"] != "1", "the weights' id, not TFS's folder"


def test_bad_audio_raises_a_value_error_naming_the_problem(handler: ModuleType) -> None:
    with pytest.raises(AudioError) as err:
        handler.input_handler(io.BytesIO(b"RIFF....not really"), _context())
    assert isinstance(err.value, ValueError) and "request body" in str(err.value)

    short = io.BytesIO()
    sf.write(short, np.full(4000, 0.1, dtype=np.float32), 4000, format="WAV")
    with pytest.raises(ValueError, match="request body"):
        handler.input_handler(io.BytesIO(short.getvalue()), _context())


def test_other_content_types_and_model_server_errors_are_refused(handler: ModuleType, trained_run: TrainedRun) -> None:
    _, wav = _test_recording(trained_run)
    with pytest.raises(handler.UnsupportedContentType, match="send audio/wav"):
        handler.input_handler(io.BytesIO(wav), _context("application/json"))

    failed = requests.Response()
    failed.status_code, failed._content = 400, b'{"error": "bad input"}'
    with pytest.raises(handler.ModelServerError, match="400"):
        handler.output_handler(failed, _context())


def test_instances_json_round_trips_float32_exactly(handler: ModuleType) -> None:
    windows = (np.random.default_rng(0).standard_normal((2, 3, 4)) * 50).astype(np.float32)

    parsed = np.asarray(json.loads(handler.instances_json(windows))["instances"], dtype=np.float32)

    np.testing.assert_array_equal(parsed, windows)


def test_artifact_handler_runs_on_its_own_packaged_feature_code(trained_run: TrainedRun) -> None:
    """In a fresh interpreter (as the endpoint host) the handler imports code/steps, not the repository."""
    _, wav = _test_recording(trained_run)
    wav_path = trained_run.model_dir.parent / "request.wav"
    wav_path.write_bytes(wav)
    code_dir = trained_run.model_dir / "code"
    script = (
        "import io, json, sys; from collections import namedtuple\n"
        f"sys.path.insert(0, {str(code_dir)!r})\n"
        "import inference, steps.features\n"
        "C = namedtuple('C', 'request_content_type model_version')\n"
        f"body = inference.input_handler(io.BytesIO(open({str(wav_path)!r}, 'rb').read()), C('audio/wav', '1'))\n"
        "print(json.dumps({'features': steps.features.__file__, 'windows': len(json.loads(body)['instances'])}))\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/")

    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert Path(out["features"]).resolve() == (code_dir / "steps" / "features.py").resolve()
    assert out["windows"] >= 1
