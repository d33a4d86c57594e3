"""Batch grants through the real handlers on moto in-process: the API queues chunks on GrantBatchQueue, the
worker grants each chunk's users (in bulk, or through the grant pipeline). Redelivered chunks grant and count
nobody twice; stock and per-user limits hold; failures are counted with their reasons.

The suite runs 2,000 users to keep `make test` inside its 20 minutes; `GRANT_BATCH_PROOF_USERS=10000` runs the
issue's full 10,000 (about 70 s on a 2-core machine)."""

from __future__ import annotations

import os

import boto3
import pytest
from boto3.dynamodb.conditions import Attr

from marketing.campaigns import batches
from marketing.core.identity import Caller, Role
from marketing.rewards import api as rewards_api
from marketing.rewards import service as rewards_service
from tests.handlers.test_campaigns_api import ADMIN, call, make_reward
from tests.support import Function, RunningOutContext, claims

USERS = int(os.environ.get("GRANT_BATCH_PROOF_USERS", "2000"))
CREATE = "/v1/rewards/{reward_id}/grant-batches"
GET = "/v1/grant-batches/{grant_batch_id}"


@pytest.fixture
def api(stack):
    return Function("CampaignsApiFunction", stack)


@pytest.fixture
def worker(stack):
    return Function("GrantBatchWorkerFunction", stack)


def create(api, reward_id: str, who=ADMIN, **body) -> tuple[int, dict]:
    return call(api, "POST", f"/v1/rewards/{reward_id}/grant-batches", CREATE,
                body={"reason": "launch gift", **body}, who=who)


def batch(api, batch_id: str) -> dict:
    status, answer = call(api, "GET", f"/v1/grant-batches/{batch_id}", GET)
    assert status == 200, answer
    return answer


def deliver(stack, worker, times: int = 1, context=None) -> int:
    """Deliver every waiting chunk `times` times (as SQS does when a worker dies before deleting it), then
    delete the ones whose last delivery finished and put the others back; answers how many deliveries failed."""
    sqs, url, failed = boto3.client("sqs"), stack.queue_urls["GrantBatchQueue"], 0
    messages, unfinished = [], set()
    while page := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages"):
        messages += page
    for _ in range(times):
        unfinished = set()
        for m in messages:
            record = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                      "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                      "eventSource": "aws:sqs", "eventSourceARN": "arn", "awsRegion": "us-east-1"}
            answer = worker({"Records": [record]}, context)
            unfinished |= {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            failed += len(answer["batchItemFailures"])
    for m in messages:
        if m["MessageId"] in unfinished:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return failed


def stored_grants(stack, batch_id: str) -> list[dict]:
    table, items, start = boto3.resource("dynamodb").Table(stack.ref("Table")), [], {}
    while True:
        page = table.scan(FilterExpression=Attr("grant_batch_id").eq(batch_id) & Attr("sk").eq("GRANT"), **start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def stock_of(reward_id: str) -> dict:
    admin = Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN}))
    return rewards_service.get_reward(admin, reward_id).stock.model_dump()


def test_a_large_batch_delivered_three_times_grants_each_user_exactly_once(api, worker, stack):
    # Given a reward with a few more units than users, and a batch of USERS users (some named twice)
    reward = make_reward(stock=USERS + 5, per_user_limit=1)["reward_id"]
    users = [f"user-{n}" for n in range(USERS)]
    status, created = create(api, reward, user_ids=users + users[:10])
    assert (status, created["status"], created["total"]) == (202, "PROCESSING", USERS), created

    # When every chunk is delivered, then redelivered twice
    assert deliver(stack, worker, times=3) == 0

    # Then every user holds exactly one distributed grant, counted once, and the stock moved once per user
    done = batch(api, created["batch_id"])
    assert (done["status"], done["granted"], done["failed"], done["failed_reasons"]) == ("DONE", USERS, 0, {})
    grants = stored_grants(stack, created["batch_id"])
    assert len(grants) == USERS
    assert {g["user_id"] for g in grants} == set(users)
    assert {g["status"] for g in grants} == {"DISTRIBUTED"}
    assert stock_of(reward) == {"total": USERS + 5, "available": 5, "reserved": 0, "issued": USERS}


def test_a_chunk_cut_short_by_the_deadline_finishes_on_its_next_delivery(api, worker, stack):
    # A frequency validator takes a slot per user: such grants go through the pipeline one by one
    reward = make_reward(stock=100, validators=[{"type": "frequency", "max_per_user": 1}])["reward_id"]
    status, created = create(api, reward, user_ids=[f"u{n}" for n in range(30)])
    assert status == 202
    # The first delivery has time for five users (then the invocation is ending): the chunk comes back
    running_out = RunningOutContext(worker.spec, *([60_000] * 6), 1_000)
    assert deliver(stack, worker, context=running_out) == 1
    partial = batch(api, created["batch_id"])
    assert (partial["status"], partial["granted"]) == ("PROCESSING", 0)  # a chunk is counted once it is done
    assert len([g for g in stored_grants(stack, created["batch_id"]) if g["status"] == "DISTRIBUTED"]) == 5
    assert deliver(stack, worker, times=2) == 0
    done = batch(api, created["batch_id"])
    assert (done["status"], done["granted"], done["failed"]) == ("DONE", 30, 0)
    assert stock_of(reward)["issued"] == 30
    assert len(stored_grants(stack, created["batch_id"])) == 30


def test_grants_issued_by_a_delivery_that_died_before_counting_are_counted_once(api, worker, stack):
    reward = make_reward(stock=50)["reward_id"]
    users = [f"u{n}" for n in range(20)]
    status, created = create(api, reward, user_ids=users)
    bid = created["batch_id"]
    # Given a delivery that issued the first 12 users' grants and died before counting them
    service = Caller(sub="worker", tenant_id="t1", app_id="app1", roles=frozenset({Role.SERVICE}))
    rewards_api.issue_in_bulk(service, reward, [(batches.grant_id_of(bid, u), u) for u in users[:12]],
                              details={}, grant_batch_id=bid, refused={})
    # When the chunk is delivered again (twice)
    assert deliver(stack, worker, times=2) == 0
    # Then each user is granted and counted once
    done = batch(api, bid)
    assert (done["status"], done["granted"], done["failed"]) == ("DONE", 20, 0)
    assert len(stored_grants(stack, bid)) == 20
    assert stock_of(reward) == {"total": 50, "available": 30, "reserved": 0, "issued": 20}


def test_stock_and_per_user_limits_hold_and_failures_are_counted_with_reasons(api, worker, stack):
    reward = make_reward(stock=3, per_user_limit=1)["reward_id"]
    status, first = create(api, reward, user_ids=["a", "b", "c", "d", "e"])
    assert status == 202
    deliver(stack, worker, times=2)
    done = batch(api, first["batch_id"])
    assert (done["status"], done["granted"], done["failed"], done["failed_reasons"]) == \
        ("DONE", 3, 2, {"out of stock": 2})
    assert stock_of(reward) == {"total": 3, "available": 0, "reserved": 0, "issued": 3}

    # A second batch to users who hold the reward: the per-user limit refuses them, and nothing is taken
    rewards_service.change_stock(Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN})),
                                 reward, rewards_service.StockChange(delta=10))
    holders = sorted(g["user_id"] for g in stored_grants(stack, first["batch_id"]) if g["status"] == "DISTRIBUTED")
    status, second = create(api, reward, user_ids=holders)
    deliver(stack, worker)
    again = batch(api, second["batch_id"])
    assert (again["granted"], again["failed"]) == (0, 3)
    assert again["failed_reasons"] == {"the user reached the reward's per-user limit": 3}
    assert stock_of(reward)["available"] == 10


def test_an_email_reward_goes_through_the_distributor_and_fails_without_an_address(api, worker, stack):
    reward = make_reward(stock=None, distributor={"type": "email", "template": "welcome"})["reward_id"]
    status, created = create(api, reward, user_ids=["a", "b"])
    deliver(stack, worker)
    done = batch(api, created["batch_id"])
    assert (done["granted"], done["failed_reasons"]) == (0, {"no e-mail address is known for the user": 2})


def test_an_audience_batch_and_a_repeated_idempotency_key(api, worker, stack):
    reward = make_reward(stock=None)["reward_id"]
    status, audience = call(api, "POST", "/v1/audiences", "/v1/audiences",
                            body={"name": "VIPs", "audience_type": "LIST", "user_ids": ["v1", "v2", "v3"]})
    assert status == 201
    status, first = create(api, reward, audience_id=audience["audience_id"], idempotency_key="gift-1")
    assert (status, first["total"], first["audience_id"]) == (202, 3, audience["audience_id"])
    status, repeat = create(api, reward, audience_id=audience["audience_id"], idempotency_key="gift-1")
    assert (status, repeat["batch_id"]) == (202, first["batch_id"])
    status, other = create(api, reward, user_ids=["x"], idempotency_key="gift-1")
    assert (status, other["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    deliver(stack, worker)
    assert batch(api, first["batch_id"])["granted"] == 3
    assert len(stored_grants(stack, first["batch_id"])) == 3


@pytest.mark.parametrize(("body", "field"), [
    ({"user_ids": ["a"], "audience_id": "x"}, "body"),
    ({}, "body"),
    ({"user_ids": []}, "body.user_ids"),
    ({"user_ids": ["bad id"]}, "body.user_ids.0"),
    ({"user_ids": ["a"], "reason": ""}, "body.reason"),
    ({"audience_id": "nope"}, "body.audience_id"),
])
def test_bad_input_names_the_field_and_queues_nothing(api, stack, body, field):
    reward = make_reward()["reward_id"]
    status, answer = create(api, reward, **body)
    assert status == 422, answer
    assert field in {d["field"] for d in answer["error"]["details"]}, answer
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=stack.queue_urls["GrantBatchQueue"],
                                                          AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_who_may_grant_in_batches(api, stack):
    reward = make_reward()["reward_id"]
    assert create(api, "missing", user_ids=["a"])[0] == 404
    assert create(api, reward, who=claims("t1", "u1", "[user]"), user_ids=["a"])[0] == 403
    status, created = create(api, reward, user_ids=["a"])
    assert call(api, "GET", f"/v1/grant-batches/{created['batch_id']}", GET, who=claims("t2"))[0] == 404
    assert call(api, "GET", f"/v1/grant-batches/{created['batch_id']}", GET, who=claims(app="app2"))[0] == 404
    assert call(api, "GET", "/v1/grant-batches/unknown", GET)[0] == 404
