"""Writes the codes of large redeem-code batches, one chunk per SQS message; failed messages are reported
one by one (partial batch responses) and retried, then parked in the DLQ."""

import json

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from marketing.core.batch import DeadlineBatchProcessor
from marketing.core.identity import scope_of
from marketing.core.observability import logger, metrics, tracer
from marketing.rewards import redeem

# A chunk (redeem.CHUNK codes) is about 80 BatchWriteItem requests: seconds, or tens of seconds when DynamoDB
# throttles the new partitions. A chunk is started only while that worst case still fits.
processor = DeadlineBatchProcessor(record_seconds=25)


def generate(record: SQSRecord) -> None:
    work = json.loads(record.body)
    redeem.generate_chunk(scope_of(work["tenant_id"], work["app_id"]), work["batch_id"], int(work["offset"]),
                          int(work["count"]))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return process_partial_response(event=event, record_handler=generate, processor=processor, context=context)
