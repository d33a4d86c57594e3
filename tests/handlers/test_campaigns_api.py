"""Campaign engine handlers on moto: the API function fed sample or built events, the task engine fed bus
events, and the grant worker fed the GrantQueue messages that the template's rule delivers."""

from __future__ import annotations

import json

import boto3
import pytest

from marketing.campaigns import channels
from marketing.core.identity import Caller, Role
from marketing.rewards import service as rewards_service
from marketing.rewards.models import RewardIn
from tests.support import Function, body_of, claims, http_event, sample_event

ADMIN = claims("t1", "ops", "[admin]")
OTHER_TENANT = claims("t2", "ops", "[admin]")


@pytest.fixture
def api(stack):
    channels.reset()
    return Function("CampaignsApiFunction", stack)


@pytest.fixture
def engine(stack):
    return Function("TaskTriggerFunction", stack)


@pytest.fixture
def worker(stack):
    return Function("GrantWorkerFunction", stack)


def call(api, method: str, path: str, route: str, body=None, query=None, who=ADMIN) -> tuple[int, dict]:
    answer = api(http_event(method, path, route, body=body, query=query, claims_=who))
    return answer["statusCode"], body_of(answer)


def make_reward(tenant: str = "t1", stock: int | None = 10, **fields) -> dict:
    """A reward made through the rewards capability's own service (its HTTP API is issue 3's)."""
    admin = Caller(sub="ops", tenant_id=tenant, app_id="app1", roles=frozenset({Role.ADMIN}))
    body = {"name": "Coupon 5", "reward_type": "COUPON",
            "content": {"discount_type": "AMOUNT", "discount_value": 500}, "total_stock": stock, **fields}
    return rewards_service.create_reward(admin, RewardIn(**body)).model_dump(mode="json")


CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2099-01-01T00:00:00Z", "status": "ACTIVE"}


def task_body(reward_id: str, **overrides) -> dict:
    return {"name": "Register", "task_type": "REGISTER", "event_type": "USER_REGISTER",
            "condition": {"type": "count", "operator": ">=", "value": 1}, "period": "ONCE", "reward_id": reward_id,
            **overrides}


def setup_task(api, reward_id: str, campaign: dict | None = None, **task) -> tuple[str, str]:
    status, created = call(api, "POST", "/v1/campaigns", "/v1/campaigns", body=campaign or CAMPAIGN)
    assert status == 201, created
    status, made = call(api, "POST", "/v1/tasks", "/v1/tasks", body=task_body(reward_id, **task))
    assert status == 201, made
    cid, tid = created["campaign_id"], made["task_id"]
    status, _ = call(api, "POST", f"/v1/campaigns/{cid}/tasks", "/v1/campaigns/{campaign_id}/tasks",
                     body={"task_id": tid})
    assert status == 201
    return cid, tid


def bus_event(detail_type: str, detail: dict, source: str = "marketing.campaigns") -> dict:
    envelope = {"tenant_id": "t1", "app_id": "app1", "occurred_at": "2026-11-23T16:00:00.000Z"}
    return {"version": "0", "id": "x", "detail-type": detail_type, "source": source, "account": "123456789012",
            "time": "2026-11-23T16:00:00Z", "region": "us-east-1", "resources": [], "detail": {**envelope, **detail}}


def triggered(user: str, event_id: str, event_type: str = "USER_REGISTER", **detail) -> dict:
    return bus_event("task.triggered", {"event_id": event_id, "event_type": event_type, "user_id": user,
                                        "event_data": detail.pop("event_data", {}), **detail})


def drain(stack, worker) -> list[dict]:
    """Feed every message waiting on GrantQueue to the worker once; answers the batch failures."""
    sqs = boto3.client("sqs")
    url = stack.queue_urls["GrantQueue"]
    failures = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return failures
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:GrantQueue",
                    "awsRegion": "us-east-1"} for m in messages]
        answer = worker({"Records": records})
        failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        failures += [f for f in answer["batchItemFailures"]]
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            else:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)


def grants_of(task_id: str, tenant: str = "t1") -> list[dict]:
    from marketing.rewards import dal as rewards_dal

    admin = Caller(sub="ops", tenant_id=tenant, app_id="app1", roles=frozenset({Role.ADMIN}))
    del rewards_dal
    return [g.model_dump() for g in rewards_service.list_grants(admin, {"task_id": task_id}, 100, None).items]


def test_full_flow_register_task_to_distributed_grant(api, engine, worker, stack):
    reward = make_reward()
    cid, tid = setup_task(api, reward["reward_id"])

    outcome = engine(triggered("u-1", "evt-1", user_attributes={"email": "u1@example.com"}))
    assert outcome["outcomes"] == [{"task_id": tid, "outcome": "COMPLETED"}]
    assert drain(stack, worker) == []

    grants = grants_of(tid)
    assert [(g["status"], g["user_id"], g["campaign_id"]) for g in grants] == [("DISTRIBUTED", "u-1", cid)]
    status, logs = call(api, "GET", "/v1/task-completion-logs", "/v1/task-completion-logs", query={"task_id": tid})
    assert status == 200 and [(i["user_id"], i["period"]) for i in logs["items"]] == [("u-1", "ONCE")]
    status, stats = call(api, "GET", f"/v1/tasks/{tid}/completion-stats", "/v1/tasks/{task_id}/completion-stats")
    assert stats == {"task_id": tid, "total_completions": 1, "unique_users": 1}
