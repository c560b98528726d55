"""Write-once S3 objects against moto's server."""
import json

from lambdas.shared import aws
from lambdas.shared.storage import date_partition, put_json_lines_once


def test_put_json_lines_once_writes_first_delivery_only(aws_endpoint: str) -> None:
    # GIVEN a bucket
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="samay-test")
    # WHEN the same line is delivered twice, the second with other content
    first = put_json_lines_once("samay-test", "k.jsonl", [{"a": 1}])
    second = put_json_lines_once("samay-test", "k.jsonl", [{"a": 2}])
    # THEN only the first write happened
    assert (first, second) == (True, False)
    body = s3.get_object(Bucket="samay-test", Key="k.jsonl")["Body"].read().decode()
    assert [json.loads(line) for line in body.splitlines()] == [{"a": 1}]


def test_date_partition_is_hive_style() -> None:
    partition = date_partition()
    assert partition.startswith("dt=") and len(partition) == len("dt=YYYY-MM-DD")
