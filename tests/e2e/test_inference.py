"""End to end through the local cloud: S3 inference/incoming/ -> notification -> λ inference -> the
local endpoint (a model artifact in the DESIGN 4.7 form, served by the endpoint host) -> DynamoDB + S3.

The artifact is built here, small on purpose: a SavedModel over four per-window loudness features
and a `code/inference.py` with the TFS handler contract (raw WAV in, `{label, probabilities,
model_version, windows}` out, a ValueError for audio shorter than one window). It goes through the
same registry and deployment calls a pipeline's RegisterModel and Deploy make, so the stored
`model_package_arn` is checked too. Assertions do not depend on which classes the model knows.
Transient endpoint failures (503 twice, then an answer) are exercised against the scripted runtime
in tests/lambdas, since the endpoint host answers every handler error with a 4xx.
"""
from __future__ import annotations

import io
import json
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from boto3.dynamodb.types import TypeDeserializer

from lambdas.shared.config import (
    ENDPOINT_NAME,
    INFERENCE_FUNCTION,
    LOCAL_ACCOUNT_ID,
    LOCAL_BUCKET,
    MODEL_PACKAGE_GROUP,
    PREDICTIONS_TABLE,
    SAGEMAKER_ROLE_NAME,
)
from tests.fixtures.cloud import LocalCloud, running_local_cloud, wait_until
from tests.lambdas.wav_bytes import wav_bytes

LABELS = ["Asthma", "COPD", "Normal"]
ROLE_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{SAGEMAKER_ROLE_NAME}"
TFS_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.16-cpu"

HANDLER = textwrap.dedent('''
    """TFS handlers of the e2e artifact: one-second windows -> four loudness features -> class scores."""
    import io
    import json
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    LABELS = json.loads((Path(__file__).resolve().parents[1] / "labels.json").read_text())
    WINDOW_SECONDS = 1.0


    class AudioRejected(ValueError):
        """Input this model cannot score (the endpoint answers 4xx)."""


    def input_handler(data, context):
        if context.request_content_type != "audio/wav":
            raise AudioRejected(f"content type {context.request_content_type} is not audio/wav")
        try:
            audio, rate = sf.read(io.BytesIO(data.read()), dtype="float32", always_2d=True)
        except RuntimeError as err:
            raise AudioRejected(f"unreadable WAV: {err}") from None
        mono, size = audio.mean(axis=1), int(rate * WINDOW_SECONDS)
        if len(mono) < size:
            raise AudioRejected(f"{len(mono) / rate:.2f} s is shorter than one {WINDOW_SECONDS} s window")
        windows = mono[: len(mono) // size * size].reshape(-1, size)
        crossings = (np.diff(np.sign(windows), axis=1) != 0).mean(axis=1)
        features = np.stack([np.abs(windows).mean(axis=1), windows.std(axis=1), crossings, np.abs(windows).max(axis=1)], axis=1)
        return json.dumps({"instances": features.tolist()})


    def output_handler(response, context):
        if response.status_code != 200:
            raise ValueError(response.content.decode())
        scores = np.asarray(json.loads(response.content)["predictions"], dtype="float64")
        mean = scores.mean(axis=0)
        mean = mean / mean.sum()
        body = {
            "label": LABELS[int(mean.argmax())],
            "probabilities": {label: float(p) for label, p in zip(LABELS, mean)},
            "model_version": str(context.model_version),
            "windows": int(len(scores)),
        }
        return json.dumps(body), "application/json"
''')


def save_savedmodel(path: Path) -> None:
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.constant([[4.0, -2.0, 1.0], [1.0, 3.0, -1.0], [-2.0, 1.0, 5.0], [0.5, 0.5, -0.5]])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": tf.nn.softmax(tf.matmul(features, self.weights))}

    module = Scorer()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def artifact_bytes(work: Path) -> bytes:
    """model.tar.gz: `1/` SavedModel, `code/inference.py`, `labels.json` (DESIGN 4.7)."""
    save_savedmodel(work / "1")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(work / "1", arcname="1")
        for name, text in (("code/inference.py", HANDLER), ("labels.json", json.dumps(LABELS)), ("code/requirements.txt", "soundfile\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A local cloud of this module's own (no pipeline: this path needs none, and the endpoint is ours alone)."""
    with running_local_cloud(tmp_path_factory.mktemp("samay-local-inference"), pipeline=False) as local_cloud:
        yield local_cloud


@pytest.fixture(scope="module")
def deployed(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The artifact registered and deployed to samay-lung-sound; returns its model package ARN."""
    local_cloud = cloud
    s3, sagemaker = local_cloud.client("s3"), local_cloud.client("sagemaker")
    tag = uuid.uuid4().hex[:8]
    key = f"models/e2e-inference-{tag}/model.tar.gz"
    s3.put_object(Bucket=LOCAL_BUCKET, Key=key, Body=artifact_bytes(tmp_path_factory.mktemp("artifact")))
    package_arn = sagemaker.create_model_package(
        ModelPackageGroupName=MODEL_PACKAGE_GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": TFS_IMAGE, "ModelDataUrl": f"s3://{LOCAL_BUCKET}/{key}"}],
            "SupportedContentTypes": ["audio/wav"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    sagemaker.create_model(ModelName=f"e2e-inference-{tag}", PrimaryContainer={"ModelPackageName": package_arn}, ExecutionRoleArn=ROLE_ARN)
    config_name = f"e2e-inference-{tag}"
    sagemaker.create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"e2e-inference-{tag}", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )
    existing = sagemaker.list_endpoints(NameContains=ENDPOINT_NAME)["Endpoints"]
    if any(e["EndpointName"] == ENDPOINT_NAME for e in existing):
        sagemaker.update_endpoint(EndpointName=ENDPOINT_NAME, EndpointConfigName=config_name)
    else:
        sagemaker.create_endpoint(EndpointName=ENDPOINT_NAME, EndpointConfigName=config_name)

    def serving() -> bool:
        endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT_NAME)
        assert endpoint["EndpointStatus"] != "Failed", endpoint.get("FailureReason")
        return endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == config_name

    wait_until(serving, f"{ENDPOINT_NAME} in service with {config_name}", timeout=180)
    return package_arn


def predictions_of(local_cloud: LocalCloud, recording_ids: list[str]) -> list[dict[str, Any]]:
    dynamodb, deserializer = local_cloud.client("dynamodb"), TypeDeserializer()
    items = []
    for recording_id in recording_ids:
        found = dynamodb.query(
            TableName=PREDICTIONS_TABLE,
            KeyConditionExpression="recording_id = :r",
            ExpressionAttributeValues={":r": {"S": recording_id}},
            ConsistentRead=True,
        )["Items"]
        items += [{k: deserializer.deserialize(v) for k, v in item.items()} for item in found]
    return items


def lines_of(local_cloud: LocalCloud, recording_ids: list[str]) -> list[dict[str, Any]]:
    s3, bucket = local_cloud.client("s3"), LOCAL_BUCKET
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="predictions/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].rsplit("/", 1)[1].split(".")[0] in recording_ids]
    return [json.loads(line) for key in keys for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]


def inference_invocations(local_cloud: LocalCloud) -> int:
    """How many times the router has completed the inference function (its health endpoint counts them)."""
    router = local_cloud.record()["components"]["router"]
    counts = requests.get(router["url"], timeout=5).json()["counts"]
    return counts.get(f"{INFERENCE_FUNCTION}_invocations", 0)


def upload(local_cloud: LocalCloud, recording_id: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
    local_cloud.client("s3").put_object(
        Bucket=LOCAL_BUCKET, Key=f"inference/incoming/{recording_id}.wav", Body=body, Metadata=metadata or {}
    )


def test_uploads_are_scored_once_each_and_failures_set_aside(cloud: LocalCloud, deployed: str) -> None:
    local_cloud = cloud
    # GIVEN three recordings (4 kHz 16-bit, 44.1 kHz 24-bit, stereo) uploaded under inference/incoming/
    run = uuid.uuid4().hex[:6]
    good = {f"e2e{run}-{n}": audio for n, audio in enumerate([wav_bytes(3.0), wav_bytes(2.5, sample_rate=44100, bits=24), wav_bytes(4.0, channels=2)])}
    for recording_id, audio in good.items():
        upload(local_cloud, recording_id, audio, {"patient_id": f"e2e_{run}"})

    # THEN each gets one OK item and one S3 line, probabilities summing to 1, with the deployed package
    ids = list(good)
    items = wait_until(lambda: (found := predictions_of(local_cloud, ids)) and len(found) == 3 and found, "3 predictions", timeout=180)
    assert sorted(item["recording_id"] for item in items) == sorted(ids)
    for item in items:
        assert item["status"] == "OK" and item["predicted_label"] in item["probabilities"]
        assert float(sum(item["probabilities"].values())) == pytest.approx(1.0, abs=1e-3)
        assert (item["model_package_arn"], item["endpoint_name"], item["patient_id"]) == (deployed, ENDPOINT_NAME, f"e2e_{run}")
        assert item["windows"] >= 2
    assert sorted(line["recording_id"] for line in lines_of(local_cloud, ids)) == sorted(ids)

    # WHEN one of them is uploaded again, byte for byte
    before = inference_invocations(local_cloud)
    upload(local_cloud, ids[0], good[ids[0]])
    wait_until(lambda: inference_invocations(local_cloud) > before, "the re-upload's invocation", timeout=120)
    # THEN nothing is added
    assert len(predictions_of(local_cloud, ids)) == 3 and len(lines_of(local_cloud, ids)) == 3

    # WHEN a corrupt file and one too short for the model's window arrive
    corrupt, short = f"e2e{run}-corrupt", f"e2e{run}-short"
    upload(local_cloud, corrupt, b"PK\x03\x04 a zip file, not audio" * 20)
    upload(local_cloud, short, wav_bytes(0.7))
    failed = wait_until(lambda: (found := predictions_of(local_cloud, [corrupt, short])) and len(found) == 2 and found, "2 FAILED items", timeout=180)
    # THEN each is one FAILED item naming its reason (the local check, the endpoint's 4xx) and a copy aside
    reasons = {item["recording_id"]: (item["status"], item["error_reason"]) for item in failed}
    assert reasons == {corrupt: ("FAILED", "not_wav"), short: ("FAILED", "rejected_by_endpoint")}
    assert "shorter than one 1.0 s window" in next(i["error"] for i in failed if i["recording_id"] == short)
    s3, bucket = local_cloud.client("s3"), LOCAL_BUCKET
    for recording_id in (corrupt, short):
        copy = s3.get_object(Bucket=bucket, Key=f"inference/failed/{recording_id}.wav")["Body"].read()
        reason = json.loads(s3.get_object(Bucket=bucket, Key=f"inference/failed/{recording_id}.json")["Body"].read())
        assert len(copy) > 0 and reason["reason"] == reasons[recording_id][1]
