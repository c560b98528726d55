"""`samay deploy`: package the Lambdas, deploy infra/template.yaml, then upsert the pipeline."""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from pipelines.cli._common import console, fail


def deploy(
    stack: str = typer.Option("samay", "--stack", help="CloudFormation stack name."),
    region: Optional[str] = typer.Option(None, "--region", help="AWS region (default: the session's)."),
    code_bucket: Optional[str] = typer.Option(None, help="Bucket for the Lambda zip (default samay-artifacts-<account>-<region>, created if missing)."),
    parameter: list[str] = typer.Option([], "--parameter", "-p", help="Extra template parameter Name=Value (repeatable)."),
    vendor: bool = typer.Option(True, help="Bundle Powertools and pydantic into the zip (off: lambdas/ only)."),
    pipeline: bool = typer.Option(True, help="Upsert the SageMaker pipeline with the stack's role afterwards."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Build the package and print the plan; touch no account."),
) -> None:
    """Package the Lambda code, deploy the AWS stack, and upsert the pipeline."""
    import boto3

    from pipelines import deployer

    extra = {}
    for item in parameter:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--parameter expects Name=Value, got {item!r}")
        extra[name] = value
    try:
        package = deployer.build_lambda_package(vendor=vendor)
    except deployer.DeployError as err:
        fail(str(err))
    console.print(f"Lambda package: {len(package.files)} files, {len(package.body) / 1e6:.1f} MB, sha256 {package.sha256[:12]}")
    if dry_run:
        table = Table("resource", "type", title=f"Plan for stack {stack} (dry run: nothing deployed)")
        for logical_id, resource_type in deployer.planned_resources():
            table.add_row(logical_id, resource_type)
        console.print(table)
        for entry in deployer.stack_parameters(code_bucket or "<samay-artifacts-ACCOUNT-REGION>", package.key, extra):
            console.print(f"  parameter {entry['ParameterKey']} = {entry['ParameterValue']}")
        return
    session = boto3.session.Session(region_name=region)
    try:
        bucket = code_bucket or deployer.code_bucket_name(session)
        deployer.upload_package(session, package, bucket)
        console.print(f"Uploaded s3://{bucket}/{package.key}")
        with console.status(f"Deploying stack {stack}..."):
            description = deployer.deploy_stack(session, stack, deployer.stack_parameters(bucket, package.key, extra))
    except deployer.DeployError as err:
        fail(str(err))
    outputs = deployer.stack_outputs(description)
    console.print(f"Stack {stack}: {description['StackStatus']}")
    for key, value in sorted(outputs.items()):
        console.print(f"  {key} = {value}")
    if pipeline:
        from pipelines.pipeline import get_pipeline

        role = outputs["SageMakerExecutionRoleArn"]
        built = get_pipeline(region=session.region_name, role=role, default_bucket=outputs["BucketName"])
        built.upsert(role_arn=role)
        console.print(f"Pipeline {built.name} upserted with role {role}")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
