"""`samay quicksight`: the S3 manifests and the dashboard definition for QuickSight on AWS."""
from __future__ import annotations

import json
from typing import Optional

import typer

from pipelines.cli._common import console

group = typer.Typer(help="QuickSight: S3 manifests for the datasets and the dashboard definition.", no_args_is_help=True)


@group.command("manifest")
def manifest() -> None:
    """Write quicksight/manifest.json (predictions) and the models export + manifest to the bucket."""
    from lambdas.shared.config import Settings
    from pipelines import quicksight

    for name, uri in quicksight.write_manifests(Settings.from_env()).items():
        console.print(f"{name} manifest: {uri}")


@group.command("definition")
def definition(
    account_id: str = typer.Option(..., help="AWS account that owns the datasets."),
    predictions_dataset_arn: str = typer.Option(..., help="ARN of the predictions dataset."),
    models_dataset_arn: str = typer.Option(..., help="ARN of the models dataset."),
    principal_arn: str = typer.Option(..., help="QuickSight user or group that owns the dashboard."),
    create: bool = typer.Option(False, help="Create the dashboard in QuickSight instead of printing the request."),
    region: Optional[str] = typer.Option(None, help="QuickSight region."),
) -> None:
    """Print (or create) the CreateDashboard request with the same views as `samay dashboard`."""
    from pipelines import quicksight

    request = quicksight.create_dashboard_request(account_id, predictions_dataset_arn, models_dataset_arn, principal_arn)
    if not create:
        console.print_json(json.dumps(request))
        return
    import boto3

    response = boto3.client("quicksight", region_name=region).create_dashboard(**request)
    console.print(f"Dashboard {response['DashboardId']}: {response['CreationStatus']}")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="quicksight")
