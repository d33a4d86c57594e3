"""One large batch through the real handlers and the worker, on moto in-process (over HTTP the embedded AWS
would take minutes): the count is exact, no code repeats, and two half exports are disjoint.

The suite runs 20,000 codes (about 20 s); `REWARDS_PROOF_CODES=100000` runs the issue's full 100,000 (about
2 CPU-minutes on moto, which spends them serializing items)."""

from __future__ import annotations

import os

import boto3
from boto3.dynamodb.conditions import Attr

from marketing.rewards import codes
from tests.handlers.test_redeem_api import ADMIN, call, export, exported_codes, new_reward
from tests.support import Function, seed_campaign

COUNT = int(os.environ.get("REWARDS_PROOF_CODES", "20000"))


def drain(stack, worker: Function) -> int:
    """Deliver the queue to the worker as its event source mapping would (batch size 2)."""
    sqs, url, delivered = boto3.client("sqs"), stack.ref("CodeBatchQueue"), 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2).get("Messages", []):
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": "arn", "awsRegion": "us-east-1"} for m in messages]
        assert worker({"Records": records}) == {"batchItemFailures": []}
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        delivered += len(messages)
    return delivered


def stored_code_count(stack) -> int:
    """Codes are the items' keys: the table cannot hold one twice, so the count proves there is no duplicate."""
    table, count, start = boto3.resource("dynamodb").Table(stack.ref("Table")), 0, {}
    while True:
        page = table.scan(Select="COUNT", FilterExpression=Attr("sk").eq("CODE"), **start)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_a_large_batch_is_exact_unique_and_exports_disjoint_halves(stack):
    rewards_api, redeem_api = Function("RewardsApiFunction", stack), Function("RedeemApiFunction", stack)
    seed_campaign()
    status, batch = call(redeem_api, "POST", "/v1/campaigns/c1/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes",
                         body={"reward_id": new_reward(rewards_api, total_stock=None), "count": COUNT})
    assert (status, batch["status"], batch["total"]) == (202, "GENERATING", COUNT)

    assert drain(stack, Function("CodeBatchWorkerFunction", stack)) == -(-COUNT // 2000)
    path = f"/v1/redeem-code-batches/{batch['batch_id']}"
    done = call(redeem_api, "GET", path, "/v1/redeem-code-batches/{batch_id}")[1]
    assert (done["status"], done["generated"]) == ("DONE", COUNT)

    assert stored_code_count(stack) == COUNT

    first = exported_codes(stack, export(redeem_api, batch["batch_id"], who=ADMIN, count=COUNT // 2)[1])
    second = exported_codes(stack, export(redeem_api, batch["batch_id"], who=ADMIN, count=COUNT // 2)[1])
    assert len(first) == len(second) == COUNT // 2
    assert not set(first) & set(second)
    assert len(set(first) | set(second)) == COUNT
    assert call(redeem_api, "GET", f"/v1/redeem-codes/{second[-1]}", "/v1/redeem-codes/{code}")[0] == 200
    assert all(codes.is_well_formed(c) for c in first[:1000] + second[-1000:])
