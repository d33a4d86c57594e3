"""Puts accepted events on the stats queue: now, after an SQS delay (up to 15 minutes), or through a one-time
EventBridge Scheduler schedule that sends the same message to the queue at `deliver_at`."""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import UTC, datetime
from functools import cache

from botocore.exceptions import ClientError

from marketing.core import aws

SQS_MAX_DELAY = 900  # seconds: SQS DelaySeconds' limit; later deliveries go through EventBridge Scheduler
SQS_BATCH = 10


@cache
def _sqs():
    return aws.client("sqs")


@cache
def _scheduler():
    return aws.client("scheduler")


def delay_of(deliver_at: datetime | None, now: datetime) -> int:
    """Seconds from now until `deliver_at` (0 when absent or past)."""
    if deliver_at is None:
        return 0
    return max(0, math.ceil((deliver_at - now).total_seconds()))


def send(messages: list[tuple[str, dict, int]]) -> set[str]:
    """Send (id, body, delay seconds ≤ 900) messages in batches of ten; answers the ids SQS refused."""
    refused: set[str] = set()
    for start in range(0, len(messages), SQS_BATCH):
        entries = [{"Id": str(n), "MessageBody": json.dumps(body, separators=(",", ":")), "DelaySeconds": delay}
                   for n, (_, body, delay) in enumerate(messages[start:start + SQS_BATCH])]
        answer = _sqs().send_message_batch(QueueUrl=os.environ["STATS_QUEUE_URL"], Entries=entries)
        refused |= {messages[start + int(f["Id"])][0] for f in answer.get("Failed", [])}
    return refused


def schedule_name(tenant_id: str, app_id: str, event_id: str, sender: str | None = None) -> str:
    """Stable per tenant, app, event and sender, so a retried request finds its schedule instead of making a
    second one, and neither a user nor another app can take the name of someone else's event."""
    text = f"{tenant_id}\n{app_id}\n{sender or ''}\n{event_id}"
    return "stats-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def schedule(name: str, body: dict, at: datetime) -> None:
    """A one-time schedule that puts `body` on the stats queue at `at`, then deletes itself."""
    try:
        _scheduler().create_schedule(
            Name=name, ScheduleExpression=f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})",
            ScheduleExpressionTimezone="UTC", FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
            Target={"Arn": os.environ["STATS_QUEUE_ARN"], "RoleArn": os.environ["STATS_SCHEDULER_ROLE_ARN"],
                    "Input": json.dumps(body, separators=(",", ":"))})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConflictException":  # scheduled by an earlier try
            raise
