"""Batch grant worker: chunks of a batch grant from GrantBatchQueue, each user through the grant pipeline
(marketing.campaigns.batches). A chunk with users left (a distributor to retry, or no time left) is reported as
a batch item failure and comes back; its finished users are not granted or counted again."""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from marketing.campaigns import batches, grants
from marketing.core.batch import DeadlineBatchProcessor
from marketing.core.observability import logger, metrics, tracer

# A chunk starts only while one user and the chunk's counting still fit; inside, it stops starting users as
# the invocation ends (batches.process_chunk), so a chunk never runs past the timeout.
processor = DeadlineBatchProcessor(record_seconds=batches.USER_SECONDS + batches.COUNT_SECONDS)


def handle(record: SQSRecord, lambda_context: Any = None) -> None:
    work = json.loads(record.body)
    attempt = int(record.attributes.approximate_receive_count or 1)
    context = lambda_context  # Powertools passes it to a record handler that names it
    seconds_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context else (lambda: float("inf"))
    try:
        batches.process_chunk(work["tenant_id"], work["app_id"], work["batch_id"], int(work["offset"]),
                              work["user_ids"], attempt, seconds_left)
    except batches.Unfinished as unfinished:
        if unfinished.backoff:
            grants.back_off(record.receipt_handle, attempt, batches.QUEUE_VARIABLE)
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
