"""Scheduled pull of recent orders from CPS platforms, through their adapters, into the webhook's ingestion.

The sources are configured (marketing.cps.adapters.configured_sources); an invocation whose event carries
`sources` (or is itself one source) pulls those instead, e.g. `POST /_local/invoke/CpsPullFunction`."""

from typing import Any

from marketing.core.observability import logger, metrics, tracer
from marketing.cps import service
from marketing.cps.adapters import configured_sources


def _sources(event: dict[str, Any]) -> list[dict[str, Any]]:
    if "sources" in event:
        return list(event["sources"])
    if "tenant_id" in event:
        return [event]
    return configured_sources()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results, failed = [], 0
    for source in _sources(event):
        where = {k: source.get(k) for k in ("tenant_id", "app_id", "platform")}
        try:
            results.append({**where, **service.pull(source)})
        except Exception:  # one platform down must not stop the others; the run fails at the end
            logger.exception("pull failed", extra=where)
            failed += 1
            results.append({**where, "failed": True})
    if failed:
        raise RuntimeError(f"{failed} pull source(s) failed: {results}")  # the schedule's retry pulls again
    return {"results": results}
