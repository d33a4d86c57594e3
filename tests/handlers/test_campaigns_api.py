"""Campaign engine handlers on moto: the API function fed sample or built events, the task engine fed bus
events, and the grant worker fed the GrantQueue messages that the template's rule delivers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import boto3
import pytest
from pydantic import TypeAdapter

from marketing.campaigns import channels, grants
from marketing.campaigns import dal as campaigns_dal
from marketing.campaigns.periods import ONCE_KEY
from marketing.core import clock
from marketing.core.identity import Caller, Role
from marketing.rewards import service as rewards_service
from marketing.rewards.models import RewardFields, RewardIn
from tests.support import Function, RunningOutContext, body_of, bus_tap, claims, http_event, sample_event

ADMIN = claims("t1", "ops", "[admin]")
OTHER_TENANT = claims("t2", "ops", "[admin]")


@pytest.fixture
def api(stack):
    channels.reset()
    return Function("CampaignsApiFunction", stack)


@pytest.fixture
def engine(stack):
    return Function("TaskTriggerFunction", stack, publishes=True)  # its task.completed reaches GrantQueue


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


def task_body(reward: str, **overrides) -> dict:
    return {"name": "Register", "task_type": "REGISTER", "event_type": "USER_REGISTER",
            "condition": {"type": "count", "operator": ">=", "value": 1}, "period": "ONCE", "reward_id": reward,
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
    admin = Caller(sub="ops", tenant_id=tenant, app_id="app1", roles=frozenset({Role.ADMIN}))
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


def table_items(stack) -> list[dict]:
    return boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]


def test_sample_events_answer(api):
    assert api(sample_event("campaigns_api/create_campaign.json"))["statusCode"] == 201
    assert api(sample_event("campaigns_api/list_campaigns.json"))["statusCode"] == 200
    assert api(sample_event("campaigns_api/create_audience.json"))["statusCode"] == 201
    unknown_reward = api(sample_event("campaigns_api/create_task.json"))
    assert unknown_reward["statusCode"] == 422
    assert body_of(unknown_reward)["error"]["details"][0]["field"] == "reward_id"
    assert api(sample_event("campaigns_api/trigger.json"))["statusCode"] == 202
    assert body_of(api(sample_event("campaigns_api/user_tasks.json"))) == {"user_id": "u-123", "items": []}
    assert api(sample_event("campaigns_api/completion_logs.json"))["statusCode"] == 200


@pytest.mark.parametrize(("body", "field"), [
    ({**CAMPAIGN, "name": ""}, "body.name"),
    ({**CAMPAIGN, "start_time": "2030-01-01T00:00:00Z", "end_time": "2029-01-01T00:00:00Z"}, "body.end_time"),
    ({**CAMPAIGN, "status": "RUNNING"}, "body.status"),
    ({**CAMPAIGN, "start_time": "2030-01-01T00:00:00"}, "body.start_time"),
    ({**CAMPAIGN, "audience_id": "nope"}, "audience_id"),
])
def test_bad_campaign_input_names_the_field_and_writes_nothing(api, stack, body, field):
    status, answer = call(api, "POST", "/v1/campaigns", "/v1/campaigns", body=body)
    assert status == 422
    assert field in [d["field"] for d in answer["error"]["details"]]
    assert table_items(stack) == []


@pytest.mark.parametrize(("overrides", "field"), [
    ({"name": ""}, "body.name"),
    ({"task_type": "DANCE"}, "body.task_type"),
    ({"period": "HOURLY"}, "body.period"),
    ({"condition": {"type": "avg", "value": 1}}, "body.condition.type"),
    ({"condition": {"type": "sum", "value": 100}}, "body.condition.field"),
    ({"condition": {"type": "count", "operator": "<", "value": 1}}, "body.condition.operator"),
    ({"start_time": "2030-01-01T00:00:00Z", "end_time": "2029-01-01T00:00:00Z"}, "body.end_time"),
    ({"period": "ONCE", "max_count": 3}, "body.max_count"),
    ({"reward_id": "unknown-reward"}, "reward_id"),
])
def test_bad_task_input_names_the_field(api, stack, overrides, field):
    reward = make_reward()
    before = len(table_items(stack))
    status, answer = call(api, "POST", "/v1/tasks", "/v1/tasks", body=task_body(reward["reward_id"], **overrides))
    assert status == 422, answer
    assert field in [d["field"] for d in answer["error"]["details"]]
    assert len(table_items(stack)) == before


def test_crud_and_links(api):
    reward = make_reward()
    cid, tid = setup_task(api, reward["reward_id"])
    # linking again answers the existing link; the campaign lists its task
    status, _ = call(api, "POST", f"/v1/campaigns/{cid}/tasks", "/v1/campaigns/{campaign_id}/tasks",
                     body={"task_id": tid})
    assert status == 200
    status, page = call(api, "GET", f"/v1/campaigns/{cid}/tasks", "/v1/campaigns/{campaign_id}/tasks")
    assert [t["task_id"] for t in page["items"]] == [tid] and page["items"][0]["campaign_ids"] == [cid]
    # linked things cannot be deleted
    assert call(api, "DELETE", f"/v1/tasks/{tid}", "/v1/tasks/{task_id}")[0] == 409
    assert call(api, "DELETE", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}")[0] == 409
    # update keeps the links; the period cannot change
    status, updated = call(api, "PUT", f"/v1/tasks/{tid}", "/v1/tasks/{task_id}",
                           body=task_body(reward["reward_id"], name="Sign up"))
    assert status == 200 and updated["name"] == "Sign up" and updated["campaign_ids"] == [cid]
    status, answer = call(api, "PUT", f"/v1/tasks/{tid}", "/v1/tasks/{task_id}",
                          body=task_body(reward["reward_id"], period="DAILY"))
    assert status == 422 and answer["error"]["details"][0]["field"] == "period"
    # unlink, then both go
    assert call(api, "DELETE", f"/v1/campaigns/{cid}/tasks/{tid}", "/v1/campaigns/{campaign_id}/tasks/{task_id}")[0] \
        == 204
    assert call(api, "DELETE", f"/v1/campaigns/{cid}/tasks/{tid}", "/v1/campaigns/{campaign_id}/tasks/{task_id}")[0] \
        == 404
    assert call(api, "DELETE", f"/v1/tasks/{tid}", "/v1/tasks/{task_id}")[0] == 204
    assert call(api, "DELETE", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}")[0] == 204
    assert call(api, "GET", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}")[0] == 404
    assert call(api, "GET", f"/v1/tasks/{tid}", "/v1/tasks/{task_id}")[0] == 404


def test_campaign_update_moves_audience_references(api):
    _, first = call(api, "POST", "/v1/audiences", "/v1/audiences", body={"name": "All", "audience_type": "ALL"})
    _, second = call(api, "POST", "/v1/audiences", "/v1/audiences",
                     body={"name": "Few", "audience_type": "LIST", "user_ids": ["a", "b"]})
    _, campaign = call(api, "POST", "/v1/campaigns", "/v1/campaigns",
                       body={**CAMPAIGN, "audience_id": first["audience_id"]})
    cid = campaign["campaign_id"]
    # the audience in use cannot go; after the campaign moves to the other one, it can
    assert call(api, "DELETE", f"/v1/audiences/{first['audience_id']}", "/v1/audiences/{audience_id}")[0] == 409
    status, moved = call(api, "PUT", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}",
                         body={**CAMPAIGN, "audience_id": second["audience_id"]})
    assert status == 200 and moved["audience_id"] == second["audience_id"]
    assert call(api, "DELETE", f"/v1/audiences/{first['audience_id']}", "/v1/audiences/{audience_id}")[0] == 204
    assert call(api, "DELETE", f"/v1/audiences/{second['audience_id']}", "/v1/audiences/{audience_id}")[0] == 409
    # an ENDED campaign is frozen
    assert call(api, "PUT", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}",
                body={**CAMPAIGN, "status": "ENDED", "audience_id": second["audience_id"]})[0] == 200
    assert call(api, "PUT", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}",
                body={**CAMPAIGN, "audience_id": second["audience_id"]})[0] == 409


def test_lists_paginate_and_reject_foreign_tokens(api):
    for i in range(5):
        call(api, "POST", "/v1/campaigns", "/v1/campaigns", body={**CAMPAIGN, "name": f"c{i}"})
    names, token = [], None
    while True:
        _, page = call(api, "GET", "/v1/campaigns", "/v1/campaigns",
                       query={"limit": "2", **({"next_token": token} if token else {})})
        names += [c["name"] for c in page["items"]]
        token = page["next_token"]
        if not token:
            break
    assert sorted(names) == [f"c{i}" for i in range(5)]
    _, first = call(api, "GET", "/v1/campaigns", "/v1/campaigns", query={"limit": "2"})
    status, answer = call(api, "GET", "/v1/campaigns", "/v1/campaigns", query={"next_token": first["next_token"]},
                          who=OTHER_TENANT)
    assert status == 400 and answer["error"]["details"][0]["field"] == "next_token"


def test_tenants_and_roles(api):
    reward = make_reward()
    cid, tid = setup_task(api, reward["reward_id"])
    assert call(api, "GET", f"/v1/campaigns/{cid}", "/v1/campaigns/{campaign_id}", who=OTHER_TENANT)[0] == 404
    assert call(api, "GET", f"/v1/tasks/{tid}", "/v1/tasks/{task_id}", who=OTHER_TENANT)[0] == 404
    user = claims("t1", "u-1", "[user]")
    assert call(api, "POST", "/v1/campaigns", "/v1/campaigns", body=CAMPAIGN, who=user)[0] == 403
    assert call(api, "POST", "/v1/tasks/trigger", "/v1/tasks/trigger",
                body={"event_type": "X", "user_id": "u-1"}, who=user)[0] == 403
    assert call(api, "GET", "/v1/users/u-2/tasks", "/v1/users/{user_id}/tasks", who=user)[0] == 403
    assert call(api, "GET", "/v1/users/u-1/tasks", "/v1/users/{user_id}/tasks", who=user)[0] == 200
    forged = call(api, "POST", "/v1/tasks/trigger", "/v1/tasks/trigger",
                  body={"tenant_id": "t1", "event_type": "X", "user_id": "u"}, who=OTHER_TENANT)
    assert forged[0] == 403


def test_trigger_puts_the_event_on_the_bus(api, stack):
    delivered = bus_tap(stack, {"detail-type": ["task.triggered"]})

    status, accepted = call(api, "POST", "/v1/tasks/trigger", "/v1/tasks/trigger",
                            body={"event_type": "PURCHASE", "user_id": "u-9", "event_data": {"amount": 1200}})
    assert status == 202 and accepted["status"] == "ACCEPTED"
    detail = delivered()[0]["detail"]
    assert detail["event_id"] == accepted["event_id"] and detail["tenant_id"] == "t1"
    assert (detail["event_type"], detail["user_id"], detail["event_data"]) == ("PURCHASE", "u-9", {"amount": 1200})
    future = call(api, "POST", "/v1/tasks/trigger", "/v1/tasks/trigger",
                  body={"event_type": "X", "user_id": "u", "occurred_at": "2099-01-01T00:00:00Z"})
    assert future[0] == 422 and future[1]["error"]["details"][0]["field"] == "occurred_at"


def test_the_same_event_five_times_completes_once_and_grants_once(api, engine, worker, stack):
    reward = make_reward()
    _, tid = setup_task(api, reward["reward_id"])
    outcomes = [engine(triggered("u-1", "evt-same"))["outcomes"][0]["outcome"] for _ in range(5)]
    assert outcomes == ["COMPLETED"] + ["DUPLICATE"] * 4
    assert drain(stack, worker) == []
    assert [g["status"] for g in grants_of(tid)] == ["DISTRIBUTED"]
    _, stats = call(api, "GET", f"/v1/tasks/{tid}/completion-stats", "/v1/tasks/{task_id}/completion-stats")
    assert (stats["total_completions"], stats["unique_users"]) == (1, 1)


def test_an_exact_target_reached_by_one_event_is_not_lost_to_a_racing_one(api, engine):
    # Given a task completing at exactly 2 events, and event "a" that brought the progress to 2 but has not
    # completed yet (its Lambda is still between the two writes)
    reward = make_reward(stock=None)
    _, tid = setup_task(api, reward["reward_id"], condition={"type": "count", "operator": "==", "value": 2})
    assert engine(triggered("u-1", "first"))["outcomes"][0]["outcome"] == "COUNTED"
    campaigns_dal.add_progress("t1", tid, "u-1", period_key=ONCE_KEY, event_id="a", amount=1, max_count=1,
                               expires=2_000_000_000)
    # When a racing event "b" arrives, it may not overtake the target: it completes the task instead
    assert engine(triggered("u-1", "b"))["outcomes"][0]["outcome"] == "COMPLETED"
    # And the late completion of "a" finds the task complete
    assert engine(triggered("u-1", "a"))["outcomes"][0]["outcome"] in ("DUPLICATE", "ALREADY_COMPLETE")
    _, stats = call(api, "GET", f"/v1/tasks/{tid}/completion-stats", "/v1/tasks/{task_id}/completion-stats")
    assert stats["total_completions"] == 1


def test_count_condition_daily_period_and_max_count(api, engine):
    reward = make_reward(stock=None)
    _, tid = setup_task(api, reward["reward_id"], task_type="SIGN_IN", event_type="SIGN_IN", period="DAILY",
                        max_count=2, condition={"type": "count", "operator": ">=", "value": 2})

    def sign_in(event_id: str, day: str) -> str:
        event = triggered("u-1", event_id, "SIGN_IN")
        event["detail"]["occurred_at"] = f"{day}T10:00:00.000Z"
        return engine(event)["outcomes"][0]["outcome"]

    assert [sign_in("a", "2026-11-20"), sign_in("a", "2026-11-20"), sign_in("b", "2026-11-20"),
            sign_in("c", "2026-11-20")] == ["COUNTED", "DUPLICATE", "COMPLETED", "ALREADY_COMPLETE"]
    assert sign_in("old", "2026-11-19") == "STALE"
    assert [sign_in("d", "2026-11-21"), sign_in("e", "2026-11-21")] == ["COUNTED", "COMPLETED"]
    assert sign_in("f", "2026-11-22") == "LIMIT_REACHED"
    _, stats = call(api, "GET", f"/v1/tasks/{tid}/completion-stats", "/v1/tasks/{task_id}/completion-stats")
    assert (stats["total_completions"], stats["unique_users"]) == (2, 1)
    _, logs = call(api, "GET", "/v1/task-completion-logs", "/v1/task-completion-logs",
                   query={"task_id": tid, "user_id": "u-1"})
    assert sorted(i["period"] for i in logs["items"]) == ["D2026-11-20", "D2026-11-21"]


def test_sum_condition_adds_the_field(api, engine):
    reward = make_reward()
    _, tid = setup_task(api, reward["reward_id"], task_type="PURCHASE", event_type="ORDER_PAID",
                        condition={"type": "sum", "field": "amount", "operator": ">=", "value": 10000})
    results = [engine(triggered("u-1", f"o{i}", "ORDER_PAID", event_data={"amount": amount}))["outcomes"][0]["outcome"]
               for i, amount in enumerate([4000, "lots", 5000, 1000])]
    assert results == ["COUNTED", "NOT_COUNTED", "COUNTED", "COMPLETED"]


def test_audiences_gate_who_progresses(api, engine):
    reward = make_reward()
    _, vip = call(api, "POST", "/v1/audiences", "/v1/audiences", body={
        "name": "VIP", "audience_type": "TAG",
        "rule": {"all": [{"attr": "tags", "op": "contains", "value": "vip"},
                         {"attr": "level", "op": "gte", "value": 3}]}})
    _, tid = setup_task(api, reward["reward_id"], campaign={**CAMPAIGN, "audience_id": vip["audience_id"]})
    plain = engine(triggered("u-1", "e1", user_attributes={"tags": ["new"], "level": 5}))
    vip_user = engine(triggered("u-2", "e2", user_attributes={"tags": ["vip"], "level": 3}))
    assert plain["outcomes"][0]["outcome"] == "NOT_LIVE" and vip_user["outcomes"][0]["outcome"] == "COMPLETED"
    status, match = call(api, "POST", f"/v1/audiences/{vip['audience_id']}/match", "/v1/audiences/{audience_id}/match",
                         body={"user_id": "x", "user_attributes": {"tags": ["vip"], "level": 2}})
    assert status == 200 and match["matches"] is False


def rule_parses(monkeypatch, rule: dict) -> list:
    """Every time pydantic validates `rule` (as a dict or as JSON text), whoever asks."""
    def same(value) -> bool:
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                return False
        return value == rule

    def counting(original):
        def spy(adapter, value, *args, **kwargs):
            if same(value):
                seen.append(value)
            return original(adapter, value, *args, **kwargs)
        return spy

    seen = []
    for name in ("validate_python", "validate_json"):
        monkeypatch.setattr(TypeAdapter, name, counting(getattr(TypeAdapter, name)))
    return seen


def test_tag_rules_are_parsed_once_per_version(api, engine, monkeypatch):
    # Given a TAG audience (a rule no other test uses) behind two tasks listening to the same event
    reward = make_reward()
    rule = {"all": [{"attr": "level", "op": "gte", "value": 3}, {"attr": "parsed_once", "op": "ne", "value": 1}]}
    _, audience = call(api, "POST", "/v1/audiences", "/v1/audiences",
                       body={"name": "Levels", "audience_type": "TAG", "rule": rule})
    campaign = {**CAMPAIGN, "audience_id": audience["audience_id"]}
    cid, first = setup_task(api, reward["reward_id"], campaign=campaign, event_type="SIGN_IN", period="DAILY",
                            condition={"type": "count", "operator": ">=", "value": 100})
    _, second = call(api, "POST", "/v1/tasks", "/v1/tasks", body=task_body(
        reward["reward_id"], event_type="SIGN_IN", period="DAILY",
        condition={"type": "count", "operator": ">=", "value": 100}))
    call(api, "POST", f"/v1/campaigns/{cid}/tasks", "/v1/campaigns/{campaign_id}/tasks",
         body={"task_id": second["task_id"]})
    parses = rule_parses(monkeypatch, rule)
    # When three events are evaluated against it (six audience checks)
    for n in range(3):
        answer = engine(triggered(f"u-{n}", f"e-{n}", "SIGN_IN", user_attributes={"level": 5}))
        assert {o["outcome"] for o in answer["outcomes"]} == {"COUNTED"}
    # Then the rule was parsed once in this container
    assert len(parses) == 1
    # And an updated rule is used at once: never the stale one
    status, _ = call(api, "PUT", f"/v1/audiences/{audience['audience_id']}", "/v1/audiences/{audience_id}",
                     body={"name": "Levels", "audience_type": "TAG",
                           "rule": {"attr": "level", "op": "gte", "value": 10}})
    assert status == 200
    answer = engine(triggered("u-0", "e-3", "SIGN_IN", user_attributes={"level": 5}))
    assert {o["outcome"] for o in answer["outcomes"]} == {"NOT_LIVE"}
    answer = engine(triggered("u-0", "e-4", "SIGN_IN", user_attributes={"level": 10}))
    assert {o["outcome"] for o in answer["outcomes"]} == {"COUNTED"}


def test_paused_campaigns_and_task_windows_stop_progress(api, engine):
    reward = make_reward()
    paused_cid, _ = setup_task(api, reward["reward_id"], campaign={**CAMPAIGN, "status": "PAUSED"})
    setup_task(api, reward["reward_id"], event_type="OTHER", end_time="2026-01-02T00:00:00Z")
    assert engine(triggered("u-1", "e1"))["outcomes"][0]["outcome"] == "NOT_LIVE"
    assert engine(triggered("u-1", "e2", "OTHER"))["outcomes"][0]["outcome"] == "NOT_LIVE"
    assert engine(triggered("u-1", "e3", "NOBODY_LISTENS"))["outcomes"] == []
    call(api, "PUT", f"/v1/campaigns/{paused_cid}", "/v1/campaigns/{campaign_id}", body=CAMPAIGN)
    assert engine(triggered("u-1", "e1"))["outcomes"][0]["outcome"] == "COMPLETED"


def test_invite_task_advances_the_referrer(api, engine, worker, stack):
    reward = make_reward()
    _, tid = setup_task(api, reward["reward_id"], name="Invite 2 friends", task_type="INVITE",
                        event_type="track.new_user", condition={"type": "count", "operator": ">=", "value": 2})
    for i, user in enumerate(["bob", "carol"]):
        new_user = bus_event("track.new_user", {"event_id": f"trk-{i}", "id": f"trk-{i}", "user_id": user,
                                                "track_type": 2, "referrer": "alice", "promcode": None,
                                                "created_at": "2026-11-23T16:00:00.000Z"}, source="marketing.tracking")
        engine(new_user)
    drain(stack, worker)
    assert [(g["user_id"], g["status"]) for g in grants_of(tid)] == [("alice", "DISTRIBUTED")]
    status, view = call(api, "GET", "/v1/users/alice/tasks", "/v1/users/{user_id}/tasks")
    assert status == 200
    assert [(t["task_id"], t["progress"], t["completed"]) for t in view["items"]] == [(tid, 2, True)]


def test_sample_bus_events_reach_the_engine_and_the_worker(engine, worker):
    assert engine(sample_event("task_trigger/task_triggered.json"))["outcomes"] == []
    assert engine(sample_event("task_trigger/track_new_user.json"))["event_id"] == "trk-0001"
    # a completion nobody logged is not granted: the record fails (and would end in the DLQ)
    answer = worker(sample_event("grant_worker/task_completed.json"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]}


def test_out_of_stock_grants_fail_and_hold_no_reservation(api, engine, worker, stack):
    reward = make_reward(stock=2)
    _, tid = setup_task(api, reward["reward_id"])
    for i in range(4):
        engine(triggered(f"u-{i}", f"e-{i}"))
    drain(stack, worker)
    statuses = sorted((g["status"], g.get("reason") or "") for g in grants_of(tid))
    assert statuses == [("DISTRIBUTED", "")] * 2 + [("FAILED", "out of stock")] * 2
    admin = Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN}))
    stock = rewards_service.get_reward(admin, reward["reward_id"]).stock
    assert (stock.available, stock.reserved, stock.issued) == (0, 0, 2)


@pytest.mark.parametrize(("window", "status"), [
    ({"valid_until": "2026-01-01T00:00:00Z"}, "FAILED"),
    ({"valid_from": "2099-01-01T00:00:00Z"}, "FAILED"),
    ({"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z"}, "DISTRIBUTED"),
])
def test_a_reward_outside_its_validity_is_not_granted(api, engine, worker, stack, window, status):
    reward = make_reward(**window)
    _, tid = setup_task(api, reward["reward_id"])
    engine(triggered("u-1", "e-1"))
    drain(stack, worker)
    [grant] = grants_of(tid)
    assert grant["status"] == status
    if status == "FAILED":
        assert grant["reason"] == "the reward is outside its validity"


def test_redeem_code_reward_issues_a_code(api, engine, worker, stack):
    reward = make_reward(reward_type="REDEEM_CODE", name="Gift code", content={"description": "a gift"})
    _, tid = setup_task(api, reward["reward_id"])
    engine(triggered("u-1", "e-1"))
    drain(stack, worker)
    [grant] = grants_of(tid)
    assert grant["status"] == "DISTRIBUTED" and len(grant["details"]["code_suffix"]) == 4


def test_email_and_sms_rewards_go_through_ses_and_sns(api, engine, worker, stack):
    boto3.client("ses").verify_email_identity(EmailAddress="rewards@example.com")
    mail = make_reward(distributor={"type": "email", "template": "reward"})
    text = make_reward(distributor={"type": "sms", "template": "reward"})
    _, mail_task = setup_task(api, mail["reward_id"], event_type="MAIL")
    _, text_task = setup_task(api, text["reward_id"], event_type="TEXT")
    engine(triggered("u-1", "m1", "MAIL", user_attributes={"email": "u1@example.com"}))
    engine(triggered("u-1", "t1", "TEXT", user_attributes={"phone": "+15550100"}))
    engine(triggered("u-2", "m2", "MAIL"))  # no address known: fails at once, stock returned
    drain(stack, worker)
    assert sorted(g["status"] for g in grants_of(mail_task)) == ["DISTRIBUTED", "FAILED"]
    assert [g["status"] for g in grants_of(text_task)] == ["DISTRIBUTED"]
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends
    from moto.sns.models import sns_backends

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert [m.destinations["ToAddresses"] for m in sent] == [["u1@example.com"]]
    assert [p[0] for p in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values()] == ["+15550100"]


class Hook:
    """A tiny webhook receiver on 127.0.0.1: fails the first `failures` calls with a 500, records the rest;
    with `location`, answers every call with a redirect there instead."""

    def __init__(self, failures: int = 0, location: str | None = None):
        import http.server
        import threading

        hook = self
        self.failures, self.calls = failures, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.calls.append((dict(self.headers), body))
                self.send_response(302 if location else 500 if len(hook.calls) <= hook.failures else 204)
                if location:
                    self.send_header("Location", location)
                self.end_headers()

            do_GET = do_POST  # noqa: N815 (a followed redirect arrives as a GET)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def loopback_webhooks(monkeypatch):
    """Receivers on 127.0.0.1 over http: the local escape hatch (never honoured in Lambda, docs/architecture.md)."""
    monkeypatch.setenv("LOCAL_ALLOW_LOOPBACK_WEBHOOKS", "1")


def granted_through(hook: Hook, api, engine, worker, stack, secret_name: str | None = None,
                    **reward) -> tuple[dict, str]:
    """A task grants u-1 a reward delivered to `hook` (closed after); answers the reward and the task id."""
    try:
        made = make_reward(distributor={"type": "webhook", "url": hook.url, "secret_name": secret_name}, **reward)
        _, tid = setup_task(api, made["reward_id"])
        engine(triggered("u-1", "e-1"))
        drain(stack, worker)
    finally:
        hook.close()
    return made, tid


@pytest.mark.parametrize(("failures", "status", "calls"), [(2, "DISTRIBUTED", 3), (99, "FAILED", 4)])
def test_webhook_is_signed_and_retried(api, engine, worker, stack, loopback_webhooks, failures, status, calls):
    from marketing.campaigns.channels import signature, tenant_secret

    boto3.client("secretsmanager").create_secret(Name=tenant_secret("t1", "app1", "hook"), SecretString="s3cret")
    hook = Hook(failures)
    reward, tid = granted_through(hook, api, engine, worker, stack, stock=5, secret_name="hook")
    [grant] = grants_of(tid)
    assert grant["status"] == status and len(hook.calls) == calls
    headers, body = hook.calls[-1]
    assert headers["X-Marketing-Signature"] == signature("s3cret", headers["X-Marketing-Timestamp"], body)
    sent = json.loads(body)
    assert (sent["grant_id"], sent["tenant_id"], sent["app_id"]) == (grant["grant_id"], "t1", "app1")
    admin = Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN}))
    stock = rewards_service.get_reward(admin, reward["reward_id"]).stock
    if status == "FAILED":
        assert grant["reason"].startswith("distribution failed after 4 attempts")
        assert (stock.available, stock.reserved, stock.issued) == (5, 0, 0)
    else:
        assert (stock.available, stock.reserved, stock.issued) == (4, 0, 1)


def test_a_webhook_name_rebound_to_a_private_address_fails_the_grant_without_calling_it(api, engine, worker,
                                                                                       stack, monkeypatch):
    # Given a webhook whose name resolved to a public address when it was configured
    answers = iter(["93.184.215.14"])  # then, from the next lookup on, this machine
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "10.0.0.5"), port))]))
    connected = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    reward = make_reward(stock=5, distributor={"type": "webhook", "url": "https://hooks.example.com/grant"})
    _, tid = setup_task(api, reward["reward_id"])
    # When the grant is distributed
    engine(triggered("u-1", "e-1"))
    assert drain(stack, worker) == []  # not retried: no retry makes the address safe
    # Then it fails at once, naming the refused address, without any connection, and gives its stock back
    [grant] = grants_of(tid)
    assert grant["status"] == "FAILED" and connected == []
    assert grant["reason"] == "webhook refused: hooks.example.com resolves to 10.0.0.5, a private address"
    admin = Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN}))
    stock = rewards_service.get_reward(admin, reward["reward_id"]).stock
    assert (stock.available, stock.reserved, stock.issued) == (5, 0, 0)


def test_a_webhook_redirect_is_not_followed(api, engine, worker, stack, loopback_webhooks):
    # Given a receiver that redirects every call to a server inside the network
    inside = Hook()
    redirecting = Hook(location=inside.url.replace("/hook", "/admin"))
    try:
        reward = make_reward(stock=5, distributor={"type": "webhook", "url": redirecting.url})
        _, tid = setup_task(api, reward["reward_id"])
        engine(triggered("u-1", "e-1"))
        drain(stack, worker)
    finally:
        redirecting.close()
        inside.close()
    # Then every attempt stops at the redirect, and the grant fails saying so
    [grant] = grants_of(tid)
    assert grant["status"] == "FAILED" and len(redirecting.calls) == 4 and inside.calls == []
    assert "answered 302; redirects are not followed" in grant["reason"]


def test_a_completion_whose_event_the_bus_refused_is_granted_once_the_outbox_publishes_it(api, engine, worker,
                                                                                          stack, monkeypatch):
    # Given a completion made while the bus refuses every event
    reward = make_reward()
    _, tid = setup_task(api, reward["reward_id"])
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    # Then the engine still succeeds (task.completed committed with the completion), nothing is granted yet
    assert engine(triggered("u-1", "evt-1"))["outcomes"][0]["outcome"] == "COMPLETED"
    assert drain(stack, worker) == [] and grants_of(tid) == []
    # When the bus is back, the publisher's retry puts the event on it, and the grant is made once
    monkeypatch.setenv("EVENT_BUS_NAME", stack.ref("EventBus"))
    assert engine(triggered("u-1", "evt-1"))["outcomes"][0]["outcome"] == "DUPLICATE"
    drain(stack, worker)
    assert [g["status"] for g in grants_of(tid)] == ["DISTRIBUTED"]
    _, stats = call(api, "GET", f"/v1/tasks/{tid}/completion-stats", "/v1/tasks/{task_id}/completion-stats")
    assert stats["total_completions"] == 1


def test_a_repeated_task_completed_message_grants_once(api, engine, worker, stack):
    reward = make_reward(stock=5)
    _, tid = setup_task(api, reward["reward_id"])
    engine(triggered("u-1", "evt-1"))
    sqs = boto3.client("sqs")
    url = stack.queue_urls["GrantQueue"]
    body = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["Body"]
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    assert drain(stack, worker) == []
    assert [g["status"] for g in grants_of(tid)] == ["DISTRIBUTED"]
    admin = Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN}))
    stock = rewards_service.get_reward(admin, reward["reward_id"]).stock
    assert (stock.available, stock.reserved, stock.issued) == (4, 0, 1)


def test_reward_granted_leaves_once_with_the_grant_and_a_repeat_sends_nothing_more(api, engine, worker, stack):
    # Given a grant already DISTRIBUTED, its reward.granted committed with it
    reward = make_reward(stock=5)
    setup_task(api, reward["reward_id"])
    delivered = bus_tap(stack, {"detail-type": ["reward.granted"]})
    engine(triggered("u-1", "evt-1"))
    sqs, url = boto3.client("sqs"), stack.queue_urls["GrantQueue"]
    body = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["Body"]
    assert drain(stack, worker) == []
    events = delivered()
    assert len(events) == 1 and events[0]["detail"]["status"] == "DISTRIBUTED"
    # When the completion message arrives again
    sqs.send_message(QueueUrl=url, MessageBody=body)
    assert drain(stack, worker) == []
    # Then no second reward.granted: the first one left with the write that made the grant
    assert delivered() == []


def test_business_metrics_are_emitted(api, engine, worker, stack, monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    reward = make_reward()
    setup_task(api, reward["reward_id"])
    engine(triggered("u-1", "evt-1"))
    drain(stack, worker)
    names = set()
    for line in capsys.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            names |= {m["Name"] for m in json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"CampaignsCreated", "TasksCreated", "TasksTriggered", "TasksCompleted", "TaskTriggerDuration",
            "RewardGenerationDuration", "RewardDistributionDuration", "RewardsDistributed", "InventoryReserved",
            "InventoryConfirmed"} <= names


def test_the_rewards_frequency_validator_is_exact_and_failed_grants_give_their_slot_back(api, engine, worker, stack):
    # Given a reward a user may get twice a week, and a daily task completing on every sign-in
    reward = make_reward(stock=None, validators=[{"type": "frequency", "max_per_user": 2, "period": "WEEK"}])
    _, tid = setup_task(api, reward["reward_id"], event_type="SIGN_IN", period="DAILY", max_count=None)
    other = make_reward(stock=None, validators=[{"type": "frequency", "max_per_user": 1, "period": "WEEK"}])
    _, tid2 = setup_task(api, other["reward_id"], event_type="SIGN_IN", period="DAILY")
    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        event = triggered("u-1", f"e-{day}", "SIGN_IN")
        event["detail"]["occurred_at"] = f"{day}T10:00:00.000Z"
        engine(event)
    # When the three completions are granted (their events fall in one week, which decides the window)
    drain(stack, worker)
    # Then two are DISTRIBUTED and one FAILED by frequency; the other reward allows one
    assert sorted(g["status"] for g in grants_of(tid)) == ["DISTRIBUTED", "DISTRIBUTED", "FAILED"]
    assert {g["reason"] for g in grants_of(tid) if g["status"] == "FAILED"} == \
        {"the user reached the reward's frequency limit of 2"}
    assert sorted(g["status"] for g in grants_of(tid2)) == ["DISTRIBUTED", "FAILED", "FAILED"]
    # And a grant failing after taking its slot (out of stock) gives it back
    scarce = make_reward(stock=1, validators=[{"type": "frequency", "max_per_user": 5}])
    _, tid3 = setup_task(api, scarce["reward_id"], event_type="BUY", period="DAILY")
    for day in ("2026-11-20", "2026-11-21"):
        event = triggered("u-1", f"b-{day}", "BUY")
        event["detail"]["occurred_at"] = f"{day}T10:00:00.000Z"
        engine(event)
    drain(stack, worker)
    assert sorted(g["status"] for g in grants_of(tid3)) == ["DISTRIBUTED", "FAILED"]
    slots = [i for i in table_items(stack) if i["sk"].startswith(f"GRANTFREQ#{scarce['reward_id']}#")]
    assert [(i["sk"].count("#"), i.get("n")) for i in slots] == [(2, 1), (3, None)]


def test_two_frequency_rules_of_one_period_hold_the_smaller_limit(api, engine, worker, stack):
    # Given a reward with two weekly frequency rules, 3 and 1, in that order
    reward = make_reward(stock=None, validators=[{"type": "frequency", "max_per_user": 3, "period": "WEEK"},
                                                 {"type": "frequency", "max_per_user": 1, "period": "WEEK"}])
    _, tid = setup_task(api, reward["reward_id"], event_type="SIGN_IN", period="DAILY", max_count=None)
    for day in ("2026-11-20", "2026-11-21"):
        event = triggered("u-1", f"e-{day}", "SIGN_IN")
        event["detail"]["occurred_at"] = f"{day}T10:00:00.000Z"
        engine(event)
    # When both completions (events of one week) are granted, then only one is distributed
    drain(stack, worker)
    assert sorted(g["status"] for g in grants_of(tid)) == ["DISTRIBUTED", "FAILED"]
    assert {g["reason"] for g in grants_of(tid) if g["status"] == "FAILED"} == \
        {"the user reached the reward's frequency limit of 1"}


def test_the_frequency_window_is_the_events_day_as_for_tasks(api, engine, worker, stack):
    # Given a reward a user may get once a day, and a daily sign-in task
    reward = make_reward(stock=None, validators=[{"type": "frequency", "max_per_user": 1, "period": "DAY"}])
    _, tid = setup_task(api, reward["reward_id"], event_type="SIGN_IN", period="DAILY", max_count=None)
    # When yesterday's sign-in arrives late, then today's
    yesterday = triggered("u-1", "late", "SIGN_IN")
    yesterday["detail"]["occurred_at"] = clock.iso(clock.now() - timedelta(days=1))
    engine(yesterday)
    engine(triggered("u-1", "today", "SIGN_IN", occurred_at=clock.now_iso()))
    drain(stack, worker)
    # Then each is granted in its own day: the late one did not use today's slot
    assert [g["status"] for g in grants_of(tid)] == ["DISTRIBUTED", "DISTRIBUTED"]


@contextmanager
def dynamo_requests() -> Iterator[list[str]]:
    """The DynamoDB operations sent while the block runs, seen by a botocore hook on the shared client."""
    sent: list[str] = []

    def hook(model, **_):
        sent.append(model.name)

    events = campaigns_dal.dynamo.client().meta.events
    events.register("provide-client-params.dynamodb", hook)
    try:
        yield sent
    finally:
        events.unregister("provide-client-params.dynamodb", hook)


def test_a_campaign_update_answers_from_its_own_write(api):
    # Given a campaign with a description and an audience
    _, first = call(api, "POST", "/v1/audiences", "/v1/audiences", body={"name": "All", "audience_type": "ALL"})
    _, second = call(api, "POST", "/v1/audiences", "/v1/audiences", body={"name": "All 2", "audience_type": "ALL"})
    _, campaign = call(api, "POST", "/v1/campaigns", "/v1/campaigns",
                       body={**CAMPAIGN, "description": "d", "audience_id": first["audience_id"]})
    path, route = f"/v1/campaigns/{campaign['campaign_id']}", "/v1/campaigns/{campaign_id}"
    # When it is renamed, keeping its audience: one read of the audience it has, one UpdateItem (ALL_NEW)
    with dynamo_requests() as sent:
        status, renamed = call(api, "PUT", path, route,
                               body={**CAMPAIGN, "name": "Renamed", "audience_id": first["audience_id"]})
    assert status == 200 and sent == ["GetItem", "UpdateItem"]
    # Then the answer is what a read gives (the description it dropped is gone)
    assert renamed == call(api, "GET", path, route)[1]
    assert renamed["name"] == "Renamed" and renamed["description"] == ""
    # When it moves to another audience: the read, then the transaction that moves the references; no re-read
    with dynamo_requests() as sent:
        status, moved = call(api, "PUT", path, route,
                             body={**CAMPAIGN, "description": "e", "audience_id": second["audience_id"]})
    assert status == 200 and sent == ["GetItem", "TransactWriteItems"]
    assert moved == call(api, "GET", path, route)[1]
    assert (moved["audience_id"], moved["description"]) == (second["audience_id"], "e")


def set_validators(reward: dict, validators: list[dict]) -> None:
    admin = Caller(sub="ops", tenant_id="t1", app_id="app1", roles=frozenset({Role.ADMIN}))
    fields = {k: reward[k] for k in RewardFields.model_fields if k in reward}
    rewards_service.update_reward(admin, reward["reward_id"], RewardFields(**{**fields, "validators": validators}))


def frequency_slots(stack, reward: dict) -> list[tuple[int, int | None]]:
    """(depth of the sort key, n) of the reward's slot items: (2, n) a window's counter, (3, None) a marker."""
    items = [i for i in table_items(stack) if i["sk"].startswith(f"GRANTFREQ#{reward['reward_id']}#")]
    return sorted((i["sk"].count("#"), i.get("n")) for i in items)


ONCE_A_WEEK = [{"type": "frequency", "max_per_user": 1, "period": "WEEK"}]
DENY_U1 = [*ONCE_A_WEEK, {"type": "user", "deny": ["u-1"]}]


@pytest.mark.parametrize(("while_racing", "then", "outcome", "slots", "next_grant"), [
    # the racing delivery distributes the grant, then the user is denied: the slow one fails and gives back nothing
    (ONCE_A_WEEK, DENY_U1, "DISTRIBUTED", [(2, 1), (3, None)], "FAILED"),
    # the racing delivery fails it (denied), then the user is allowed again: the slow one takes no slot
    (DENY_U1, ONCE_A_WEEK, "FAILED", [], "DISTRIBUTED"),
])
def test_a_grant_delivered_twice_holds_exactly_the_slot_of_its_outcome(api, engine, worker, stack, while_racing, then,
                                                                       outcome, slots, next_grant):
    # Given a reward a user may get once a week, and a completion waiting on GrantQueue
    reward = make_reward(stock=None, validators=ONCE_A_WEEK)
    _, tid = setup_task(api, reward["reward_id"], event_type="SIGN_IN", period="DAILY", max_count=None)
    engine(triggered("u-1", "s-1", "SIGN_IN"))  # Monday 2026-11-23
    queue = stack.queue_urls["GrantQueue"]
    message = boto3.client("sqs").receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"][0]
    detail = json.loads(message["Body"])["detail"]

    # And a second delivery of the same message that runs to its end while the first one reads the reward,
    # after which an operator changes the reward's validators
    def duplicate_runs_first(params, **_):
        if params.get("Key", {}).get("sk") == "REWARD":
            events.unregister("provide-client-params.dynamodb.GetItem", duplicate_runs_first)
            set_validators(reward, while_racing)
            assert grants.process(detail, 1)["status"] == outcome
            set_validators(reward, then)

    events = campaigns_dal.dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.GetItem", duplicate_runs_first)
    # When the first delivery goes on with its stale view of the grant (PENDING)
    drain(stack, worker)
    # Then the grant keeps its outcome, and holds a slot exactly when it was distributed
    assert [g["status"] for g in grants_of(tid)] == [outcome]
    assert frequency_slots(stack, reward) == slots
    # And the user's next grant that week (the next day's sign-in) is decided by that slot alone
    set_validators(reward, ONCE_A_WEEK)
    engine(triggered("u-1", "s-2", "SIGN_IN", occurred_at="2026-11-24T16:00:00.000Z"))
    drain(stack, worker)
    assert sorted(g["status"] for g in grants_of(tid)) == sorted([outcome, next_grant])


def test_a_failed_grant_gives_its_slot_back_once_despite_a_crash_and_a_repeat(api, engine, worker, stack):
    # Given a grant that takes its slot, then fails (out of stock), in a container that dies right after FAILED
    reward = make_reward(stock=0, validators=ONCE_A_WEEK)
    _, tid = setup_task(api, reward["reward_id"], event_type="SIGN_IN", period="DAILY", max_count=None)
    engine(triggered("u-1", "s-1", "SIGN_IN"))
    sqs, queue = boto3.client("sqs"), stack.queue_urls["GrantQueue"]
    body = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"][0]["Body"]

    def dies_before_giving_back(params, **_):
        deletes = [a["Delete"]["Key"]["sk"] for a in params["TransactItems"] if "Delete" in a]
        if any(sk.startswith("GRANTFREQ#") for sk in deletes):
            events.unregister("provide-client-params.dynamodb.TransactWriteItems", dies_before_giving_back)
            raise RuntimeError("the container died")

    events = campaigns_dal.dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", dies_before_giving_back)
    # When the message comes back, and is then delivered once more
    assert len(drain(stack, worker)) == 1
    assert [g["status"] for g in grants_of(tid)] == ["FAILED"]
    assert frequency_slots(stack, reward) == [(2, 0)]
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    assert drain(stack, worker) == []
    # Then the slot went back exactly once
    assert frequency_slots(stack, reward) == [(2, 0)]


def test_a_worker_running_out_of_time_leaves_the_other_grants_for_redelivery(api, engine, worker, stack):
    reward = make_reward()
    _, tid = setup_task(api, reward["reward_id"])
    for i in range(3):
        engine(triggered(f"u-{i}", f"e-{i}"))
    sqs, url = boto3.client("sqs"), stack.queue_urls["GrantQueue"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "awsRegion": "us-east-1"} for m in messages]
    assert len(records) == 3
    # Given an invocation with time for one grant's worst case only
    one = int(worker.module.processor.worst_case(1) * 1000)
    answer = worker({"Records": records}, RunningOutContext(worker.spec, one, one - 1))
    # Then one grant is distributed and the two others are reported, not started
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [r["messageId"] for r in records[1:]]
    assert [g["status"] for g in grants_of(tid)] == ["DISTRIBUTED"]


def test_campaign_routes_take_integer_user_ids_as_text(api):
    status, audience = call(api, "POST", "/v1/audiences", "/v1/audiences", body={
        "name": "ids", "audience_type": "LIST", "user_ids": [1001, "1002"]})
    assert status == 201 and audience["user_ids"] == ["1001", "1002"]
    status, match = call(api, "POST", f"/v1/audiences/{audience['audience_id']}/match",
                         "/v1/audiences/{audience_id}/match", body={"user_id": 1001})
    assert status == 200 and (match["user_id"], match["matches"]) == ("1001", True)


def test_a_task_grant_keeps_valid_days_and_the_coupon_template_reaches_the_webhook(api, engine, worker, stack,
                                                                                 loopback_webhooks):
    # Given a coupon valid 30 days from its grant, made from coupon template "tpl-5", delivered by webhook
    # When a task grants it
    hook = Hook()
    _, tid = granted_through(hook, api, engine, worker, stack, valid_days=30,
                             generator={"type": "coupon", "template_id": "tpl-5"})
    # Then the grant is valid for 30 days from its creation, and the payload says so with the template
    [grant] = grants_of(tid)
    created = datetime.fromisoformat(grant["created_at"].replace("Z", "+00:00"))
    assert grant["valid_until"] == clock.iso(created + timedelta(days=30))
    sent = json.loads(hook.calls[-1][1])
    assert (sent["valid_until"], sent["template_id"], sent["discount_value"]) == (grant["valid_until"], "tpl-5", 500)
