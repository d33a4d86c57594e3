"""Logger, Tracer and Metrics, built once per cold start and shared by every module of the package."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# A request that records no business metric is normal (reads, health); Powertools warns about each one.
warnings.filterwarnings("ignore", message="No application metrics to publish")
