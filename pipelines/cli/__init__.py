"""The `samay` command line: one Typer app, one module per command group.

Each module exposes `register(app)`; heavy imports (TensorFlow, the SageMaker SDK) happen inside
the commands that need them so `samay --help` stays instant.
"""
from __future__ import annotations

import logging
import warnings

import typer

from pipelines.cli import bench, dashboard, data, demo, deploy, local, pipeline, predict, push, quicksight

app = typer.Typer(
    name="samay",
    help="Lung-sound MLOps: ingest recordings, train and deploy a classifier, score new recordings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for _module in (local, data, push, pipeline, predict, dashboard, quicksight, deploy, demo, bench):
    _module.register(app)


def main() -> None:
    # Configured before any SageMaker SDK import: the SDK calls logging.basicConfig(level=INFO) on
    # import (sagemaker/experiments/_metrics.py), which would flood the terminal with botocore chatter.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    # Building a pipeline definition is compile-time only: the SDK's notes about pipeline variables,
    # PipelineSession not waiting and Lambda code not uploaded are true by design here.
    logging.getLogger("sagemaker.workflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    warnings.filterwarnings("ignore", message="Lambda function won't be updated")
    app()
