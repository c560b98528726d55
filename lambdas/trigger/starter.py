"""Start PredictionsSamayPipeline for a manifest, at most once per commit.

Two guards beside the DynamoDB claim: the `ClientRequestToken` is derived from the commit, so
SageMaker itself collapses a repeated start, and an execution already `Executing` with the same
`InputDataUrl` is reused instead of starting a second one for the same data.
"""
from __future__ import annotations

import hashlib
import logging

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared import aws
from lambdas.trigger.errors import PipelineStartFailed

logger = logging.getLogger(__name__)

INPUT_PARAMETER = "InputDataUrl"
_RECENT_EXECUTIONS = 50  # running executions are recent: the newest page is enough


def request_token(commit_event_id: str) -> str:
    """64 hex chars (SageMaker wants 32-128), the same for every delivery of one commit."""
    return hashlib.sha256(f"samay-start:{commit_event_id}".encode()).hexdigest()


def running_execution(pipeline_name: str, input_data_url: str) -> str | None:
    """ARN of an `Executing` run of the pipeline on this input, if there is one."""
    sagemaker = aws.client("sagemaker")
    summaries = sagemaker.list_pipeline_executions(
        PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=_RECENT_EXECUTIONS,
    )["PipelineExecutionSummaries"]
    for summary in summaries:
        if summary.get("PipelineExecutionStatus") != "Executing":
            continue
        arn = summary["PipelineExecutionArn"]
        parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
        if any(p["Name"] == INPUT_PARAMETER and p["Value"] == input_data_url for p in parameters):
            return arn
    return None


def start_pipeline(pipeline_name: str, input_data_url: str, commit_event_id: str, description: str) -> str:
    """The execution ARN for this manifest: the running one, or a new start."""
    try:
        running = running_execution(pipeline_name, input_data_url)
        if running:
            logger.info("pipeline already running on this manifest", extra={"execution_arn": running})
            return running
        response = aws.client("sagemaker").start_pipeline_execution(
            PipelineName=pipeline_name,
            PipelineParameters=[{"Name": INPUT_PARAMETER, "Value": input_data_url}],
            PipelineExecutionDescription=description[:3072],
            ClientRequestToken=request_token(commit_event_id),
        )
    except ClientError as err:
        raise PipelineStartFailed(f"{pipeline_name}: {err.response['Error']['Code']}: "
                                  f"{err.response['Error'].get('Message', '')}") from err
    except BotoCoreError as err:
        raise PipelineStartFailed(f"{pipeline_name}: {type(err).__name__}") from err
    return response["PipelineExecutionArn"]
