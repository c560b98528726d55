"""`samay deploy`: package the Lambda code, upload it, and deploy infra/template.yaml.

The zip holds `lambdas/` and the few libraries the functions import that the Lambda runtime lacks
(Powertools, pydantic), built for the Lambda platform by pip. No TensorFlow or librosa: the
functions never compute features (the endpoint does), which keeps cold starts short.
After the stack, the pipeline is upserted through the SDK with the stack's execution role: its
definition points at code the SDK uploads into the stack's bucket, so it cannot live in the template.
"""
from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
# Lambda's Python runtime ships boto3; these are what the handlers import beyond it.
VENDORED_REQUIREMENTS = ("aws-lambda-powertools", "pydantic")
FORBIDDEN_IN_LAMBDA = ("tensorflow", "librosa", "numba", "keras")


class DeployError(RuntimeError):
    """The stack could not be deployed; the message says which step and why."""


@dataclass(frozen=True)
class LambdaPackage:
    body: bytes
    sha256: str
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"lambda-code/samay-lambdas-{self.sha256[:16]}.zip"


def _vendor(target: Path) -> None:
    constraints = REPO_ROOT / "constraints.txt"
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
        "--platform", "manylinux2014_x86_64", "--implementation", "cp", "--python-version", "3.11",
        "--only-binary=:all:", "-c", str(constraints), *VENDORED_REQUIREMENTS,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"could not vendor {', '.join(VENDORED_REQUIREMENTS)} for Lambda:\n{result.stderr[-2000:]}")


def _add_tree(archive: zipfile.ZipFile, root: Path, base: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            info = zipfile.ZipInfo(str(path.relative_to(base)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)


def build_lambda_package(vendor: bool = True) -> LambdaPackage:
    """A reproducible zip (fixed timestamps, sorted entries): the same code gives the same key."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, tempfile.TemporaryDirectory() as tmp:
        _add_tree(archive, REPO_ROOT / "lambdas", REPO_ROOT)
        if vendor:
            _vendor(Path(tmp))
            _add_tree(archive, Path(tmp), Path(tmp))
        files = tuple(archive.namelist())
    offenders = sorted({f.split("/")[0] for f in files if f.split("/")[0] in FORBIDDEN_IN_LAMBDA})
    if offenders:
        raise DeployError(f"the Lambda package must not contain {offenders}")
    body = buffer.getvalue()
    return LambdaPackage(body=body, sha256=hashlib.sha256(body).hexdigest(), files=files)


def code_bucket_name(session: boto3.session.Session) -> str:
    account = session.client("sts").get_caller_identity()["Account"]
    return f"samay-artifacts-{account}-{session.region_name}"


def upload_package(session: boto3.session.Session, package: LambdaPackage, bucket: str) -> None:
    s3 = session.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        kwargs = {} if session.region_name == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": session.region_name}
        }
        s3.create_bucket(Bucket=bucket, **kwargs)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        })
    s3.put_object(Bucket=bucket, Key=package.key, Body=package.body, ServerSideEncryption="AES256")


def stack_parameters(code_bucket: str, code_key: str, extra: dict[str, str]) -> list[dict[str, str]]:
    values = {"LambdaCodeBucket": code_bucket, "LambdaCodeKey": code_key, **extra}
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(values.items())]


def _stack_exists(cfn, stack: str) -> bool:
    try:
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except ClientError as err:
        if "does not exist" in str(err):
            return False
        raise
    return status != "REVIEW_IN_PROGRESS"


def _wait_for_stack(cfn, stack: str, timeout: float = 3600.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        description = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = description["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                raise DeployError(f"stack {stack} ended {status}: {description.get('StackStatusReason', 'see its events')}")
            return description
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack} still {status} after {timeout:.0f} s")
        time.sleep(5)


def deploy_stack(session: boto3.session.Session, stack: str, parameters: list[dict[str, str]]) -> dict:
    """Create or update the stack through a change set; returns the final stack description."""
    cfn = session.client("cloudformation")
    change_set_type = "UPDATE" if _stack_exists(cfn, stack) else "CREATE"
    name = f"samay-{int(time.time())}"
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        ChangeSetType=change_set_type,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=parameters,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    change_set = _wait_for_change_set(cfn, stack, name)
    if change_set["Status"] == "FAILED":
        if "didn't contain changes" in change_set.get("StatusReason", "") or "No updates" in change_set.get("StatusReason", ""):
            return cfn.describe_stacks(StackName=stack)["Stacks"][0]
        raise DeployError(f"change set failed: {change_set.get('StatusReason')}")
    cfn.execute_change_set(StackName=stack, ChangeSetName=name)
    return _wait_for_stack(cfn, stack)


def _wait_for_change_set(cfn, stack: str, name: str, timeout: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        change_set = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        if change_set["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return change_set
        if time.monotonic() > deadline:
            raise DeployError(f"change set {name} still {change_set['Status']} after {timeout:.0f} s")
        time.sleep(2)


def stack_outputs(description: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


def planned_resources() -> list[tuple[str, str]]:
    """(logical id, type) of every resource in the template, for `--dry-run`."""
    from cfnlint.decode import decode

    template, errors = decode(str(TEMPLATE))
    if errors:
        raise DeployError(f"{TEMPLATE} does not parse: {errors}")
    return [(logical_id, resource["Type"]) for logical_id, resource in template["Resources"].items()]
