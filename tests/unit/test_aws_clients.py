"""Every boto3 client of the package comes from marketing.core.aws: short timeouts, standard retries, and S3
links signed with SigV4 against the regional endpoint."""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from moto import mock_aws

from marketing.core import aws

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "marketing"


def test_only_core_aws_builds_boto3_clients():
    builders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "boto3"):
                builders.append(f"{path.relative_to(PACKAGE)}: boto3.{node.func.attr}")
    assert builders == ["core/aws.py: boto3.client", "core/aws.py: boto3.resource"]


def test_clients_use_short_timeouts_and_standard_retries(stack):
    from marketing.campaigns import channels
    from marketing.core import dynamo, events

    for client in (dynamo.client(), events._client(), channels._ses(), aws.client("sqs")):
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (aws.CONNECT_TIMEOUT, aws.READ_TIMEOUT)
        assert config.retries == {"mode": "standard", "total_max_attempts": aws.MAX_ATTEMPTS}


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_export_links_are_sigv4_on_the_regional_endpoint(region, monkeypatch):
    from marketing.rewards import files

    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("EXPORT_BUCKET_NAME", "exports-bucket")
    files._client.cache_clear()
    try:
        with mock_aws():
            where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            boto3.client("s3", region_name=region).create_bucket(Bucket="exports-bucket", **where)
            url = urlparse(files.store("exports/t/b/e.csv", b"code\n", "csv"))
    finally:
        files._client.cache_clear()
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert f"/{region}/s3/aws4_request" in query["X-Amz-Credential"][0]
    assert url.netloc == f"exports-bucket.s3.{region}.amazonaws.com"
    assert "Signature" not in query and "AWSAccessKeyId" not in query  # no SigV2 parameters
