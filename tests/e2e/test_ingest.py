"""End to end through the local cloud: `samay push` -> Kinesis -> pipe -> bus -> rule -> λ trigger -> pipeline."""
from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.shared import aws
from lambdas.shared.config import LOCAL_ACCOUNT_ID, PIPELINE_NAME, SAGEMAKER_ROLE_NAME, Settings
from pipelines import producer
from steps.synth import synthesize_dataset
from tests.fixtures.cloud import LocalCloud, running_local_cloud, wait_until

# A pipeline with the real one's input parameter and a single Fail step: this test is about ingestion,
# so it starts no training (the full pipeline has its own tests and the demo).
STAND_IN_DEFINITION = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "InputDataUrl", "Type": "String", "DefaultValue": "s3://samay-local/none"}],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "ingestion test stand-in"}}],
}


@pytest.fixture(scope="module")
def ingest_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A local cloud of its own with the stand-in pipeline; os.environ points at it meanwhile."""
    with running_local_cloud(tmp_path_factory.mktemp("samay-ingest"), pipeline=False) as cloud:
        patch = pytest.MonkeyPatch()
        for name, value in cloud.env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        aws.client.cache_clear()
        cloud.client("sagemaker").create_pipeline(
            PipelineName=PIPELINE_NAME, PipelineDefinition=json.dumps(STAND_IN_DEFINITION),
            RoleArn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{SAGEMAKER_ROLE_NAME}", ClientRequestToken=str(uuid.uuid4()),
        )
        try:
            yield cloud
        finally:
            patch.undo()
            aws.client.cache_clear()


def ledger_event_ids(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/records/")
    return {item["Key"].rsplit("/", 1)[1].removesuffix(".jsonl") for page in pages for item in page.get("Contents", [])}


def test_push_of_a_synthetic_dataset_reaches_the_ledger_and_starts_one_run(ingest_cloud: LocalCloud,
                                                                           tmp_path: Path) -> None:
    # GIVEN a small synthetic dataset and the local cloud
    folder = tmp_path / "synthetic-e2e"
    synthesize_dataset(folder, patients=4, recordings_per_patient=2, seed=7)
    settings = Settings.from_env()
    s3, sagemaker = ingest_cloud.client("s3"), ingest_cloud.client("sagemaker")

    # WHEN it is pushed
    report = producer.push(folder, bucket=settings.bucket, stream=settings.stream_name)
    assert report.ok and report.sent == 8, report.failures

    # THEN every recording and the commit end in the ledger (the router delivers asynchronously)
    try:
        wait_until(lambda: len(ledger_event_ids(s3, settings.bucket)) >= 9, "9 ledger objects", timeout=120)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{ingest_cloud.log_tails()}") from None
    ledger = ledger_event_ids(s3, settings.bucket)
    assert report.commit_event_id in ledger
    quarantined = s3.list_objects_v2(Bucket=settings.bucket, Prefix="quarantine/").get("KeyCount", 0)
    assert quarantined == 0
    # AND the manifest of this commit lists the labelled recordings
    key = f"datasets/synthetic-e2e-{report.commit_event_id[:8]}/manifest.csv"
    text = s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8 and {r["dataset"] for r in rows} == {"synthetic-e2e"}
    # AND exactly one pipeline execution started on it (not waited for)
    runs = sagemaker.list_pipeline_executions(PipelineName=PIPELINE_NAME)["PipelineExecutionSummaries"]
    assert len(runs) == 1
    parameters = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=runs[0]["PipelineExecutionArn"])["PipelineParameters"]
    assert {"Name": "InputDataUrl", "Value": f"s3://{settings.bucket}/{key}"} in parameters
