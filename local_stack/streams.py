"""DynamoDB stream event sources, as Lambda's event source mapping runs them (the outbox publisher's).

A poller reads every shard of the table's stream in order (moto: one shard), keeps the records the
mapping's `FilterCriteria` match (moto's EventBridge pattern matcher: Lambda filters use the same syntax)
and invokes the function with up to `BatchSize` of them. A failed batch, or the records from the first
`batchItemFailures` entry on, is tried again up to `MaximumRetryAttempts` times; then a description of the
records given up on goes to the `OnFailure` destination (an SQS queue) and the shard moves on. Not emulated:
bisecting a failed batch, `MaximumRecordAgeInSeconds`, parallelization per shard.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from moto.events.models import EventPattern

from local_stack.template import REGION
from local_stack.threads import Poller


def lambda_record(record: dict, stream_arn: str) -> dict:
    """A stream record as Lambda hands it over: creation time in epoch seconds, the stream's ARN."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn, "awsRegion": REGION}


def matcher(props: dict) -> Callable[[dict], bool]:
    patterns = [EventPattern.load(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])]
    return lambda record: not patterns or any(p.matches_event(record) for p in patterns)


class StreamPoller(Poller):
    def __init__(self, streams, sqs, stream_arn: str, props: dict, deliver: Callable[[list[dict]], set[str] | None],
                 on_failure_url: str | None = None):
        super().__init__(f"stream-{stream_arn.rsplit('/', 3)[-3]}")
        self.streams, self.sqs, self.stream_arn, self.deliver = streams, sqs, stream_arn, deliver
        self.batch_size = int(props.get("BatchSize", 100))
        self.max_retries = int(props.get("MaximumRetryAttempts", -1))
        self.matches, self.on_failure_url = matcher(props), on_failure_url
        self.start_at = props.get("StartingPosition", "TRIM_HORIZON")
        self.iterators: dict[str, str | None] = {}
        self.pending: list[dict] = []  # read and matched, not yet delivered (in order)
        self.attempts = 0

    def _read(self) -> None:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=self.start_at)["ShardIterator"]
            iterator = self.iterators[shard_id]
            if iterator is None:
                continue  # a closed shard, read to its end
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self.iterators[shard_id] = answer.get("NextShardIterator")
            records = [lambda_record(r, self.stream_arn) for r in answer.get("Records", [])]
            self.pending += [r for r in records if self.matches(json.loads(json.dumps(r, default=str)))]

    def poll_once(self) -> int:
        """Read what is new, deliver one batch; answers how many records the batch held."""
        if not self.pending:
            self._read()
        batch = self.pending[:self.batch_size]
        if not batch:
            return 0
        failed = self.deliver(batch)
        if not failed:
            self.pending, self.attempts = self.pending[len(batch):], 0
            return len(batch)
        first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
        self.pending, self.attempts = self.pending[first:], self.attempts + 1
        if 0 <= self.max_retries < self.attempts:
            self._give_up(batch[first:])
        return len(batch)

    def _give_up(self, records: list[dict]) -> None:
        if self.on_failure_url:
            first, last = records[0]["dynamodb"]["SequenceNumber"], records[-1]["dynamodb"]["SequenceNumber"]
            self.sqs.send_message(QueueUrl=self.on_failure_url, MessageBody=json.dumps({
                "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": self.attempts},
                "DDBStreamBatchInfo": {"streamArn": self.stream_arn, "batchSize": len(records),
                                       "startSequenceNumber": first, "endSequenceNumber": last}}))
        self.pending, self.attempts = self.pending[len(records):], 0


def stream_delivery(invoke: Callable[[dict], Any], name: str) -> Callable[[list[dict]], set[str]]:
    """Invoke with a batch; answers the sequence numbers that failed (all of them when the invocation did)."""
    def deliver(records: list[dict]) -> set[str]:
        try:
            result = invoke({"Records": records})
        except Exception as exc:
            print(f"[local-stack] {name} failed its stream batch: {exc!r}", flush=True)
            return {r["dynamodb"]["SequenceNumber"] for r in records}
        return {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}

    return deliver


def stream_poller(client, table_name: str, props: dict, deliver: Callable[[list[dict]], set[str]],
                  on_failure_url: str | None = None, streams=None) -> StreamPoller:
    """A poller of `table_name`'s latest stream (`streams`: a dynamodbstreams client, when the default
    endpoint does not reach the embedded AWS)."""
    arn = client("dynamodb").describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    return StreamPoller(streams or client("dynamodbstreams"), client("sqs"), arn, props, deliver, on_failure_url)
