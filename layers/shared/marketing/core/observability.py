"""Logger, Tracer and Metrics, built once per cold start and shared by every module of the package."""

from __future__ import annotations

import contextlib
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _Metrics(Metrics):
    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)
        # With POWERTOOLS_METRICS_DISABLED (tests, benches, the local stack) Powertools keeps the values, which
        # pile up across invocations and are printed anyway once 100 accumulate: drop them at each flush.
        self.clear_metrics()


class _NoSegment(BaseSegment):
    def close(self, end_time=None): pass
    def add_subsegment(self, subsegment): pass
    def remove_subsegment(self, subsegment): pass
    def put_annotation(self, key, value): pass
    def put_metadata(self, key, value, namespace="default"): pass
    def add_exception(self, exception, stack, remote=False): pass


class _NoTracing(BaseProvider):
    """The provider when tracing is off (tests, benches, the local stack, POWERTOOLS_TRACE_DISABLED): Powertools'
    default provider imports the X-Ray SDK (hundreds of ms of a cold start) even to trace nothing."""

    @contextlib.contextmanager
    def in_subsegment(self, name=None, **kwargs):
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name=None, **kwargs):
        yield _NoSegment()

    def put_annotation(self, key, value): pass
    def put_metadata(self, key, value, namespace="default"): pass
    def patch(self, modules): pass
    def patch_all(self): pass


logger = Logger()
# In Lambda with tracing on (the template's `Tracing: Active`) Powertools' own X-Ray provider, as before.
tracer = Tracer(provider=_NoTracing(), disabled=True) if Tracer._is_tracer_disabled() else Tracer()
metrics = _Metrics()

# A request that records no business metric is normal (reads, health); Powertools warns about each one.
warnings.filterwarnings("ignore", message="No application metrics to publish")
