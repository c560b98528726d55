"""Handlers the cloud tests give the router (through SAMAY_LOCAL_FUNCTIONS) in place of the project's.

They run inside the router process, so they report what they got the way a Lambda would leave a
trace: an object in S3 (`test-events/<function>/<request id>.json`). An event asking to fail
(a Kinesis record `{"fail": true}`, an uploaded key containing "fail") raises, as a broken handler would.
"""
from __future__ import annotations

import base64
import json
from typing import Any

from lambdas.shared import aws
from lambdas.shared.config import Settings


class AskedToFail(RuntimeError):
    """The event asked this handler to fail."""


def _record(event: dict, context: Any) -> None:
    aws.client("s3").put_object(
        Bucket=Settings.from_env().bucket,
        Key=f"test-events/{context.function_name}/{context.aws_request_id}.json",
        Body=json.dumps(event).encode(),
    )


def trigger(event: dict, context: Any) -> dict:
    _record(event, context)
    if json.loads(base64.b64decode(event["detail"]["data"])).get("fail"):
        raise AskedToFail("the record asked to fail")
    return {"ok": True}


def inference(event: dict, context: Any) -> dict:
    _record(event, context)
    if any("fail" in r["s3"]["object"]["key"] for r in event["Records"]):
        raise AskedToFail("the object asked to fail")
    return {"ok": True}
