"""Task engine: an EventBridge rule target. Each domain event (our `task.triggered`, `track.new_user`,
`cps.order_paid`, `code.redeemed`) advances the tasks listening to its type; completions go out as
`task.completed`. An error fails the invocation, so the event is retried (then parked in the DLQ)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse

from marketing.campaigns import engine
from marketing.campaigns.models import BusEvent
from marketing.core.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    bus_event = parse(event=event, model=BusEvent)
    task_event = engine.TaskEvent.from_bus(bus_event.detail_type, bus_event.detail)
    outcomes = engine.handle(task_event)
    return {"event_id": task_event.event_id, "outcomes": [{"task_id": t, "outcome": o} for t, o in outcomes]}
