"""Stats consumer: counts the events of the stats queue exactly once, a batch at a time."""

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from marketing.core.observability import logger, metrics, tracer
from marketing.stats import service
from marketing.stats.batch import FlushingBatchProcessor

# Parsing a record takes well under a millisecond; the flush writes the whole batch's counters (a few hundred
# DynamoDB requests at most for 1,000 events). Records are taken while both still fit in the invocation.
processor = FlushingBatchProcessor(flush=service.count, record_seconds=0.005, flush_seconds=15)


def record_handler(record: SQSRecord):
    return service.parse_message(record.body)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
