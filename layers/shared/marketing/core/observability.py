"""Logger, Tracer and Metrics, built once per cold start and shared by every module of the package."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer


class _Metrics(Metrics):
    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)
        # With POWERTOOLS_METRICS_DISABLED (tests, benches, the local stack) Powertools keeps the values, which
        # pile up across invocations and are printed anyway once 100 accumulate: drop them at each flush.
        self.clear_metrics()


logger = Logger()
tracer = Tracer()
metrics = _Metrics()

# A request that records no business metric is normal (reads, health); Powertools warns about each one.
warnings.filterwarnings("ignore", message="No application metrics to publish")
