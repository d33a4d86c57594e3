"""Shared fixtures. Environment first: no test may ever reach real AWS."""

from __future__ import annotations

import os

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "MarketingEngine", "POWERTOOLS_SERVICE_NAME": "marketing",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
})
os.environ.pop("AWS_ENDPOINT_URL", None)

import pytest  # noqa: E402

from tests.support import mocked_stack  # noqa: E402


@pytest.fixture
def stack():
    """template.yaml's resources in moto's in-process mock, fresh for each test."""
    with mocked_stack() as created:
        yield created
