"""Delivers queue messages and bus events to functions, as Lambda's event source mappings do.

- SQS event sources: a poller per mapping takes batches, invokes the function, deletes what succeeded
  (honouring `batchItemFailures` when the mapping reports them) and leaves the rest to be received again;
  the queue's own redrive policy moves a message to its DLQ after `maxReceiveCount` receives.
- EventBridge rules that target functions: the rule's target is a shadow queue in the embedded AWS (moto
  matches the pattern and delivers), polled one event at a time; a failing event is retried and then
  parked in a shadow DLQ, as Lambda's asynchronous retries would.
- DynamoDB stream event sources (the outbox): `local_stack.streams`.
- Schedules (`rate(...)`) invoke their function on a timer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from local_stack.containers import FunctionRuntime
from local_stack.provision import Stack
from local_stack.streams import StreamPoller, stream_delivery, stream_poller
from local_stack.template import ACCOUNT, REGION
from local_stack.threads import Background, Poller

ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries


def sqs_record(message: dict, queue_arn: str) -> dict:
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": message.get("Attributes", {}), "md5OfBody": message.get("MD5OfBody", ""),
        "messageAttributes": {
            k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"), "stringListValues": [],
                "binaryListValues": [], "dataType": v.get("DataType")}
            for k, v in message.get("MessageAttributes", {}).items()},
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    }


class QueuePoller(Poller):
    def __init__(self, sqs, queue_url: str, queue_arn: str, deliver: Callable[[list[dict]], set[str]],
                 *, batch_size: int = 10, retry_delay: int = 1):
        super().__init__(f"poll-{queue_url.rsplit('/', 1)[1]}")
        self.sqs, self.queue_url, self.queue_arn = sqs, queue_url, queue_arn
        self.deliver, self.batch_size, self.retry_delay = deliver, batch_size, retry_delay

    def poll_once(self) -> int:
        # Short polls: a long poll would hold the embedded AWS's request lock while it waits.
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=min(self.batch_size, 10), WaitTimeSeconds=0,
            AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        failed = self.deliver([sqs_record(m, self.queue_arn) for m in messages])
        for message in messages:
            if message["MessageId"] in failed:
                # Received again after a short pause (Lambda waits for the visibility timeout).
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=self.retry_delay)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)


def sqs_delivery(runtime: FunctionRuntime, report_failures: bool) -> Callable[[list[dict]], set[str]]:
    def deliver(records: list[dict]) -> set[str]:
        everyone = {r["messageId"] for r in records}
        try:
            result = runtime.invoke({"Records": records})
        except Exception as exc:
            print(f"[local-stack] {runtime.spec.logical_id} failed its batch: {exc!r}", flush=True)
            return everyone
        if report_failures and isinstance(result, dict):
            return {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        return set()

    return deliver


def async_delivery(runtime: FunctionRuntime) -> Callable[[list[dict]], set[str]]:
    def deliver(records: list[dict]) -> set[str]:
        failed = set()
        for record in records:
            try:
                runtime.invoke(json.loads(record["body"]))
            except Exception as exc:
                print(f"[local-stack] {runtime.spec.logical_id} failed an event: {exc!r}", flush=True)
                failed.add(record["messageId"])
        return failed

    return deliver


def _shadow_queue(sqs, name: str) -> tuple[str, str]:
    sqs.create_queue(QueueName=f"{name}-dlq")
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-dlq"
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": ASYNC_ATTEMPTS})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "30"})
    return url["QueueUrl"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


class Schedule(Background):
    def __init__(self, runtime: FunctionRuntime, seconds: float, rule_name: str):
        super().__init__(f"schedule-{rule_name}")
        self.runtime, self.seconds, self.rule_name = runtime, seconds, rule_name

    def run(self) -> None:
        while not self.stopping.wait(self.seconds):
            try:
                self.runtime.invoke(scheduled_event(self.rule_name))
            except Exception as exc:
                print(f"[local-stack] schedule {self.rule_name}: {exc!r}", flush=True)


def scheduled_event(rule_name: str) -> dict[str, Any]:
    from marketing.core.clock import now_iso

    return {"version": "0", "id": rule_name, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": now_iso()[:19] + "Z", "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule_name}"], "detail": {}}


def rate_seconds(expression: str) -> float | None:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


def table_stream_poller(invoke: Callable[[dict], Any], name: str, props: dict, client, sqs,
                        streams=None) -> StreamPoller:
    """A DynamoDB event source: the table named by the stream's ARN, failures to its `OnFailure` queue."""
    table = props["Stream"].split(":table/", 1)[1].split("/", 1)[0]
    destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[1])["QueueUrl"] if destination else None
    return stream_poller(client, table, props, stream_delivery(invoke, name), url, streams=streams)


def start_delivery(runtimes: dict[str, FunctionRuntime], stack: Stack, client, *, retry_delay: int = 1) -> list:
    """Start a poller for every SQS and DynamoDB stream event source and EventBridge rule target, and a
    timer per schedule."""
    sqs, events = client("sqs"), client("events")
    workers: list = []
    for runtime in runtimes.values():
        for event_name, event in runtime.spec.events.items():
            kind, props = event.get("Type"), stack.resolver.resolve(event.get("Properties", {}))
            rule_name = f"{stack.name}-{runtime.spec.logical_id}-{event_name}"
            if kind == "SQS":
                queue_arn = props["Queue"]
                queue_name = queue_arn.rsplit(":", 1)[1]
                url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
                report = "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
                workers.append(QueuePoller(sqs, url, queue_arn, sqs_delivery(runtime, report),
                                           batch_size=int(props.get("BatchSize", 10)), retry_delay=retry_delay))
            elif kind in ("EventBridgeRule", "CloudWatchEvent"):
                url, arn = _shadow_queue(sqs, rule_name)
                bus = props.get("EventBusName", "default")
                events.put_rule(Name=rule_name, EventBusName=bus, EventPattern=json.dumps(props["Pattern"]))
                events.put_targets(Rule=rule_name, EventBusName=bus, Targets=[{"Id": "shadow", "Arn": arn}])
                workers.append(QueuePoller(sqs, url, arn, async_delivery(runtime), batch_size=1,
                                           retry_delay=retry_delay))
            elif kind == "DynamoDB":
                workers.append(table_stream_poller(runtime.invoke, runtime.spec.logical_id, props, client, sqs))
            elif kind in ("Schedule", "ScheduleV2"):
                seconds = rate_seconds(props.get("Schedule") or props.get("ScheduleExpression", ""))
                if seconds and props.get("Enabled", True) and props.get("State", "ENABLED") == "ENABLED":
                    workers.append(Schedule(runtime, seconds, rule_name))
    return [w.start() for w in workers]
