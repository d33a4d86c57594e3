"""Every boto3 client and resource of the package is built here, with one configuration.

- Timeouts: boto3 waits 60 s to connect and 60 s to read, longer than any of our functions runs (10-120 s);
  a stuck connection would eat the whole invocation instead of failing over to a retry. A stand-in for AWS
  that serializes requests (the local stack) sets `MARKETING_AWS_READ_TIMEOUT` higher: there a request can
  wait on many others, and a retry after a timeout could repeat a write that the first attempt made.
- Retries: the SDK's `standard` mode (3 attempts with jittered backoff, throttling and transient errors
  retried for every service alike) instead of the legacy per-service rules.
- S3: pre-signed URLs signed with SigV4 against the regional endpoint; buckets created since June 2020 refuse
  SigV2 links, and us-east-1's global endpoint would redirect a browser.

Callers keep their own lazy cache (a client per container, built on first use and never at import, so tests
and the local stack configure their endpoint first).
"""

from __future__ import annotations

import os

import boto3
from botocore.config import Config

CONNECT_TIMEOUT = 2
READ_TIMEOUT = 5
MAX_ATTEMPTS = 3

S3_CONFIG = Config(signature_version="s3v4",
                   s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"})


def config_for(service: str) -> Config:
    config = Config(connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=float(os.environ.get("MARKETING_AWS_READ_TIMEOUT", READ_TIMEOUT)),
                    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS})
    return config.merge(S3_CONFIG) if service == "s3" else config


def client(service: str):
    return boto3.client(service, config=config_for(service))


def resource(service: str):
    return boto3.resource(service, config=config_for(service))
