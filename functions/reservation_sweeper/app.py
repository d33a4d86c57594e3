"""Every minute: pending reservations past their expiry become EXPIRED and their quantity returns to stock."""

from marketing.core.observability import logger, metrics, tracer
from marketing.rewards import service


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    expired = service.sweep()
    logger.info("reservations swept", extra={"expired": expired})
    return {"expired": expired}
