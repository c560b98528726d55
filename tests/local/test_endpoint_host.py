"""The endpoint host serves a model artifact built here: a tiny SavedModel plus a code/inference.py."""
from __future__ import annotations

import io
import json
import os
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from infra.local.endpoint_host import EndpointHost, EndpointHostError

BUCKET = "endpoint-models"
LABELS = ["Asthma", "COPD", "Normal"]

CHAIN_HANDLERS = '''
import json
from pathlib import Path

LABELS = json.loads((Path(__file__).resolve().parents[1] / "labels.json").read_text())


class UnsupportedContent(ValueError):
    pass


def input_handler(data, context):
    if context.request_content_type != "text/csv":
        raise UnsupportedContent(f"content type {context.request_content_type} is not text/csv")
    rows = [[float(v) for v in line.split(",")] for line in data.read().decode().splitlines()]
    return json.dumps({"instances": rows})


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode())
    predictions = json.loads(response.content)["predictions"]
    return json.dumps({
        "labels": [LABELS[max(range(len(p)), key=p.__getitem__)] for p in predictions],
        "predictions": predictions,
        "model_version": context.model_version,
        "method": context.method,
        "accept": context.accept_header,
        "custom": context.custom_attributes,
        "content_length": context.content_length,
    }), "application/json"
'''

PLAIN_HANDLER = '''
import json
import requests


def handler(data, context):
    response = requests.post(context.rest_uri, data=data.read())
    return json.dumps({"via_rest": json.loads(response.content), "status": response.status_code}), "application/json"
'''


def save_model(path: Path, scale: float) -> None:
    import tensorflow as tf

    class Scorer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"scores": tf.nn.softmax(x * scale)}

    module = Scorer()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def softmax(rows: np.ndarray) -> np.ndarray:
    exp = np.exp(rows - rows.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 (scale 1) and 2 (scale 2): the host must serve version 2."""
    root = tmp_path_factory.mktemp("savedmodels")
    save_model(root / "1", 1.0)
    save_model(root / "2", 2.0)
    return root


def upload_artifact(s3, savedmodels: Path, code: str | None, key: str) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(savedmodels / "1", arcname="1")
        archive.add(savedmodels / "2", arcname="2")
        extra = {"labels.json": json.dumps(LABELS)}
        if code is not None:
            extra["code/inference.py"] = textwrap.dedent(code)
            extra["code/requirements.txt"] = "numpy\nsamay-not-installed-anywhere\n"
        for name, text in extra.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return f"s3://{BUCKET}/{key}"


@pytest.fixture(scope="module")
def s3(moto_endpoint: str):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def host(s3, savedmodels: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHost]:
    url = upload_artifact(s3, savedmodels, CHAIN_HANDLERS, "chain/model.tar.gz")
    started = EndpointHost.start(url, tmp_path_factory.mktemp("host"))
    yield started
    started.stop()


def test_invoke_runs_handlers_around_the_latest_model_version(host: EndpointHost) -> None:
    rows = np.array([[0.1, 0.5, 0.2], [2.0, 0.0, 1.0]], dtype=np.float32)
    body = "\n".join(",".join(str(v) for v in row) for row in rows).encode()

    status, answer, content_type = host.invoke(body, "text/csv", accept="application/json", custom_attributes="trace=1")

    assert (status, content_type) == (200, "application/json")
    result = json.loads(answer)
    np.testing.assert_allclose(result["predictions"], softmax(rows * 2.0), rtol=1e-5)
    assert result["labels"] == ["COPD", "Asthma"]
    assert result["model_version"] == "2"
    assert result["method"] == "predict"
    assert result["custom"] == "trace=1"
    assert result["content_length"] == len(body)


def test_invoke_handler_error_answers_400_with_its_message(host: EndpointHost) -> None:
    status, answer, content_type = host.invoke(b"RIFF....", "audio/wav")

    assert (status, content_type) == (400, "application/json")
    assert json.loads(answer) == {"error": "content type audio/wav is not text/csv", "error_type": "UnsupportedContent"}


def test_invoke_tensor_of_wrong_shape_reaches_output_handler_as_tfs_400(host: EndpointHost) -> None:
    status, answer, _ = host.invoke(b"1,2,3,4", "text/csv")

    assert status == 400
    error = json.loads(answer)
    assert error["error_type"] == "ValueError"
    assert json.loads(error["error"])["error"]


def test_host_warns_about_unmet_code_requirements(host: EndpointHost) -> None:
    assert "samay-not-installed-anywhere (not installed)" in host.log_path.read_text()


def test_plain_handler_calls_the_tfs_rest_api_at_rest_uri(s3, savedmodels: Path, tmp_path: Path) -> None:
    url = upload_artifact(s3, savedmodels, PLAIN_HANDLER, "plain/model.tar.gz")
    plain = EndpointHost.start(url, tmp_path)
    try:
        status, answer, _ = plain.invoke(json.dumps({"instances": [[0.0, 1.0, 0.0]]}).encode(), "application/json")
    finally:
        plain.stop()

    assert status == 200
    result = json.loads(answer)
    assert result["status"] == 200
    np.testing.assert_allclose(result["via_rest"]["predictions"], softmax(np.array([[0.0, 2.0, 0.0]])), rtol=1e-5)


def test_stop_ends_the_host_process(s3, savedmodels: Path, tmp_path: Path) -> None:
    url = upload_artifact(s3, savedmodels, None, "bare/model.tar.gz")
    bare = EndpointHost.start(url, tmp_path)
    status, answer, _ = bare.invoke(json.dumps({"instances": [[1.0, 1.0, 1.0]]}).encode(), "application/json")
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1

    bare.stop()

    assert not bare.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(bare.pid, 0)


def test_start_without_savedmodel_fails_with_the_host_log(s3, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("labels.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"[]"))
    s3.put_object(Bucket=BUCKET, Key="empty/model.tar.gz", Body=buffer.getvalue())

    with pytest.raises(EndpointHostError) as caught:
        EndpointHost.start(f"s3://{BUCKET}/empty/model.tar.gz", tmp_path)

    assert "exited with code 1" in str(caught.value)
    assert "holds no SavedModel version directory" in str(caught.value)


def test_start_missing_artifact_is_endpoint_host_error(s3, tmp_path: Path) -> None:
    with pytest.raises(EndpointHostError, match="cannot fetch model data s3://endpoint-models/nope/model.tar.gz"):
        EndpointHost.start(f"s3://{BUCKET}/nope/model.tar.gz", tmp_path)
