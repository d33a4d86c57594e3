"""Grant worker: `task.completed` events from GrantQueue, each run through the grant pipeline. A record whose
distribution must be retried is reported as a batch item failure and comes back after a backoff."""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from marketing.campaigns import channels, grants
from marketing.campaigns.models import TaskCompleted
from marketing.core.batch import DeadlineBatchProcessor
from marketing.core.observability import logger, metrics, tracer

# A grant's worst case: a distribution channel that answers at its timeout, plus its DynamoDB work. A record is
# started only while that still fits; the others go back to the queue.
processor = DeadlineBatchProcessor(record_seconds=channels.TIMEOUT_SECONDS + 2)


def record_handler(record: SQSRecord) -> None:
    # The body is the EventBridge event the rule delivered; only its detail matters here.
    completed = TaskCompleted.model_validate(json.loads(record.body)["detail"])
    attempt = int(record.attributes.approximate_receive_count or 1)
    try:
        grant = grants.process(completed.model_dump(), attempt)
    except grants.RetryLater:
        grants.back_off(record.receipt_handle, attempt)
        raise
    logger.info("grant processed", extra={"grant_id": grant["grant_id"], "status": grant["status"]})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
