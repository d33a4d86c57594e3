"""Outbox publisher: puts the events that writes committed to the table's outbox on the bus.

The table's stream (filtered to new outbox items, template.yaml) feeds it; each record is one event. A record
EventBridge refuses is reported as a batch item failure: Lambda retries from it (bisecting, then the
on-failure destination keeps what never went). Publishing twice is harmless: consumers drop repeated
`event_id`s (marketing.core.events).
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from marketing.core import events
from marketing.core.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    if record.event_name.name != "INSERT" or not image or image.get("sk") != events.OUTBOX_SK:
        return  # the mapping's filter sends only new outbox items; anything else has nothing to publish
    events.put([image["entry"]])
    metrics.add_metric(name="OutboxEventsPublished", unit="Count", value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
