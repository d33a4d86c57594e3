"""Apps within tenants (issue #13) on moto: every resource belongs to the (tenant, app) of the token that made it.
An admin of another app of the same tenant gets a 404 or an empty page and changes nothing; the consumers (task
engine, grant pipeline, stats consumer, code batch worker, reservation sweeper) act in the app their event or
message names."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from local_stack.delivery import sqs_record
from marketing.campaigns import grants
from marketing.core import clock
from marketing.core.identity import Caller, Role
from marketing.rewards import dal as rewards_dal
from marketing.rewards import service as rewards_service
from tests.support import Function, body_of, claims, http_event, sample_event, seed_campaign

APP1 = claims("t1", "ops", "[admin]", "app1")
APP2 = claims("t1", "ops", "[admin]", "app2")  # the same tenant, the same person even: another app
CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2099-01-01T00:00:00Z", "status": "ACTIVE"}
COUPON = {"name": "Coupon 5", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500},
          "total_stock": 10}


@pytest.fixture
def fns(stack):
    names = ("CampaignsApi", "RewardsApi", "RedeemApi", "TrackApi", "CpsApi", "TaskTrigger", "GrantWorker",
             "StatsApi", "StatsConsumer", "CodeBatchWorker", "ReservationSweeper")
    return {name: Function(f"{name}Function", stack, publishes=True) for name in names}


def call(fn, method: str, path: str, route: str, who=APP1, body=None, query=None) -> tuple[int, dict]:
    answer = fn(http_event(method, path, route, body=body, query=query, claims_=who))
    return answer["statusCode"], body_of(answer)


def made(fn, method: str, path: str, route: str, who=APP1, body=None) -> dict:
    status, answer = call(fn, method, path, route, who=who, body=body)
    assert status in (200, 201), answer
    return answer


def items_of(stack, app: str) -> list[dict]:
    items = boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]
    return sorted((i for i in items if i["pk"].startswith(f"T#t1#A#{app}#")), key=lambda i: (i["pk"], i["sk"]))


def app1_world(fns, stack) -> dict:
    """One of everything in app1 of tenant t1."""
    reward = made(fns["RewardsApi"], "POST", "/v1/rewards", "/v1/rewards", body=COUPON)
    rid = reward["reward_id"]
    campaign = made(fns["CampaignsApi"], "POST", "/v1/campaigns", "/v1/campaigns", body=CAMPAIGN)
    task = made(fns["CampaignsApi"], "POST", "/v1/tasks", "/v1/tasks", body={
        "name": "Register", "task_type": "REGISTER", "event_type": "USER_REGISTER", "reward_id": rid,
        "condition": {"type": "count", "operator": ">=", "value": 1}, "period": "ONCE"})
    audience = made(fns["CampaignsApi"], "POST", "/v1/audiences", "/v1/audiences",
                    body={"name": "VIPs", "audience_type": "LIST", "user_ids": ["u1"]})
    seed_campaign()
    batch = made(fns["RedeemApi"], "POST", "/v1/campaigns/c1/redeem-codes", "/v1/campaigns/{campaign_id}/redeem-codes",
                 body={"reward_id": rid, "count": 3})
    code = next(i["code"] for i in items_of(stack, "app1") if i["sk"] == "CODE" and i.get("batch_id"))
    made(fns["RewardsApi"], "POST", "/v1/inventory/reserve", "/v1/inventory/reserve",
         body={"reward_id": rid, "user_id": "u1", "quantity": 1, "reservation_id": "res-1"})
    promo = made(fns["TrackApi"], "GET", "/tracks/u1/1", "/tracks/{user_id}/{track_type}")
    made(fns["TrackApi"], "POST", "/tracks", "/tracks", body={"user_id": "u2", "track_type": 1, "referrer": "u1"})
    made(fns["CpsApi"], "POST", "/v1/affiliates", "/v1/affiliates", body={"user_id": "a1"})
    made(fns["CpsApi"], "PUT", "/v1/cps/settings", "/v1/cps/settings",
         body={"levels": 1, "rates_bp": [5000, 2000], "hold_days": 3})
    return {"reward": rid, "campaign": campaign["campaign_id"], "task": task["task_id"],
            "audience": audience["audience_id"], "batch": batch["batch_id"], "code": code, "promo": promo["promcode"]}


def test_another_apps_admin_sees_nothing_and_changes_nothing(fns, stack):
    # Given one of everything in app1
    w = app1_world(fns, stack)
    before = items_of(stack, "app1")
    campaigns, rewards, redeem, track, cps = (fns[n] for n in ("CampaignsApi", "RewardsApi", "RedeemApi", "TrackApi",
                                                                "CpsApi"))
    # When app2's admin of the same tenant reads them by id, then each is unknown
    unknown = [
        (campaigns, "GET", f"/v1/campaigns/{w['campaign']}", "/v1/campaigns/{campaign_id}", None),
        (campaigns, "GET", f"/v1/tasks/{w['task']}", "/v1/tasks/{task_id}", None),
        (campaigns, "GET", f"/v1/audiences/{w['audience']}", "/v1/audiences/{audience_id}", None),
        (campaigns, "GET", f"/v1/tasks/{w['task']}/completion-stats", "/v1/tasks/{task_id}/completion-stats", None),
        (rewards, "GET", f"/v1/rewards/{w['reward']}", "/v1/rewards/{reward_id}", None),
        (redeem, "GET", f"/v1/redeem-code-batches/{w['batch']}", "/v1/redeem-code-batches/{batch_id}", None),
        (redeem, "GET", f"/v1/redeem-codes/{w['code']}", "/v1/redeem-codes/{code}", None),
        (redeem, "GET", "/v1/redeem-codes", "/v1/redeem-codes", {"batch_id": w["batch"]}),
        (track, "GET", f"/promos/{w['promo']}", "/promos/{promcode}", None),
        (cps, "GET", "/v1/affiliates/a1", "/v1/affiliates/{user_id}", None),
    ]
    for fn, method, path, route, query in unknown:
        assert call(fn, method, path, route, who=APP2, query=query)[0] == 404, path
    # And their lists are empty pages
    for fn, path, query in ((campaigns, "/v1/campaigns", None), (campaigns, "/v1/tasks", None),
                            (campaigns, "/v1/audiences", None), (rewards, "/v1/rewards", None),
                            (rewards, "/v1/reward-grants", None),
                            (rewards, "/v1/inventory/reservations", {"reward_id": w["reward"]}),
                            (track, "/tracks", {"referrer": "u1"})):
        status, page = call(fn, "GET", path, path, who=APP2, query=query)
        assert (status, page["items"]) == (200, []), path
    assert call(track, "GET", "/tracks/summary", "/tracks/summary", who=APP2, query={"referrer": "u1"})[1][
        "counts"] == {}
    assert call(cps, "GET", "/v1/cps/settings", "/v1/cps/settings", who=APP2)[1]["levels"] != 1  # the defaults
    # And every change they try is refused as about something unknown
    writes = [
        (campaigns, "PUT", f"/v1/campaigns/{w['campaign']}", "/v1/campaigns/{campaign_id}", CAMPAIGN, 404),
        (campaigns, "DELETE", f"/v1/tasks/{w['task']}", "/v1/tasks/{task_id}", None, 404),
        (campaigns, "DELETE", f"/v1/audiences/{w['audience']}", "/v1/audiences/{audience_id}", None, 404),
        (campaigns, "POST", f"/v1/campaigns/{w['campaign']}/tasks", "/v1/campaigns/{campaign_id}/tasks",
         {"task_id": w["task"]}, 404),
        (campaigns, "POST", "/v1/tasks", "/v1/tasks", {  # app1's reward is unknown in app2
            "name": "R", "task_type": "REGISTER", "event_type": "X", "reward_id": w["reward"], "period": "ONCE",
            "condition": {"type": "count", "operator": ">=", "value": 1}}, 422),
        (rewards, "POST", f"/v1/rewards/{w['reward']}/stock", "/v1/rewards/{reward_id}/stock", {"delta": 5}, 404),
        (rewards, "DELETE", f"/v1/rewards/{w['reward']}", "/v1/rewards/{reward_id}", None, 404),
        (rewards, "POST", "/v1/inventory/reserve", "/v1/inventory/reserve",
         {"reward_id": w["reward"], "user_id": "u1", "quantity": 1}, 404),
        (rewards, "POST", "/v1/inventory/res-1/cancel", "/v1/inventory/{reservation_id}/cancel", None, 404),
        (redeem, "POST", "/v1/redeem", "/v1/redeem", {"code": w["code"], "user_id": "u1"}, 404),
        (redeem, "POST", f"/v1/redeem-codes/{w['code']}/revoke", "/v1/redeem-codes/{code}/revoke", None, 404),
        (redeem, "POST", f"/v1/redeem-code-batches/{w['batch']}/export", "/v1/redeem-code-batches/{batch_id}/export",
         {}, 404),
    ]
    for fn, method, path, route, body, expected in writes:
        assert call(fn, method, path, route, who=APP2, body=body)[0] == expected, path
    # Then app1's items are exactly as they were, and app1 still finds everything
    assert items_of(stack, "app1") == before
    assert call(redeem, "GET", f"/v1/redeem-codes/{w['code']}", "/v1/redeem-codes/{code}")[0] == 200
    assert call(track, "GET", f"/promos/{w['promo']}", "/promos/{promcode}")[1]["user_id"] == "u1"


def test_a_page_token_of_one_app_is_refused_in_another(fns):
    for n in range(3):
        made(fns["CampaignsApi"], "POST", "/v1/campaigns", "/v1/campaigns", body={**CAMPAIGN, "name": f"c{n}"})
    _, page = call(fns["CampaignsApi"], "GET", "/v1/campaigns", "/v1/campaigns", query={"limit": "1"})
    status, error = call(fns["CampaignsApi"], "GET", "/v1/campaigns", "/v1/campaigns", who=APP2,
                         query={"limit": "1", "next_token": page["next_token"]})
    assert (status, error["error"]["details"]) == (400, [{"field": "next_token"}])


def drain_grants(stack, worker) -> list[dict]:
    sqs, url = boto3.client("sqs"), stack.queue_urls["GrantQueue"]
    failures = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                          AttributeNames=["All"]).get("Messages", []):
        failures += worker({"Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:GrantQueue")
                                        for m in messages]})["batchItemFailures"]
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return failures


def setup_app(fns, who) -> tuple[str, str]:
    """A reward and a live task rewarding it, in the app of `who`: (reward_id, task_id)."""
    rid = made(fns["RewardsApi"], "POST", "/v1/rewards", "/v1/rewards", who=who, body=COUPON)["reward_id"]
    cid = made(fns["CampaignsApi"], "POST", "/v1/campaigns", "/v1/campaigns", who=who, body=CAMPAIGN)["campaign_id"]
    tid = made(fns["CampaignsApi"], "POST", "/v1/tasks", "/v1/tasks", who=who, body={
        "name": "Register", "task_type": "REGISTER", "event_type": "USER_REGISTER", "reward_id": rid,
        "condition": {"type": "count", "operator": ">=", "value": 1}, "period": "ONCE"})["task_id"]
    made(fns["CampaignsApi"], "POST", f"/v1/campaigns/{cid}/tasks", "/v1/campaigns/{campaign_id}/tasks", who=who,
         body={"task_id": tid})
    return rid, tid


def grants_in(app: str) -> list[dict]:
    admin = Caller(sub="ops", tenant_id="t1", app_id=app, roles=frozenset({Role.ADMIN}))
    return [g.model_dump(mode="json") for g in rewards_service.list_grants(admin, {}, 100, None).items]


def test_an_event_of_app2_completes_app2s_task_and_grants_app2s_reward_never_app1s(fns, stack):
    # Given the same task in app1 and in app2 of one tenant, each with its own reward
    reward1, task1 = setup_app(fns, APP1)
    reward2, task2 = setup_app(fns, APP2)
    # When a user registers in app2
    event = {"version": "0", "id": "x", "detail-type": "task.triggered", "source": "marketing.campaigns",
             "time": "2026-11-23T16:00:00Z", "region": "us-east-1", "resources": [],
             "detail": {"event_id": "reg-1", "tenant_id": "t1", "app_id": "app2", "occurred_at": clock.now_iso(),
                        "event_type": "USER_REGISTER", "user_id": "u1", "event_data": {}}}
    assert fns["TaskTrigger"](event)["outcomes"] == [{"task_id": task2, "outcome": "COMPLETED"}]
    assert drain_grants(stack, fns["GrantWorker"]) == []
    # Then app2's reward is granted and taken from app2's stock; app1 has no grant and its stock is whole
    assert [(g["reward_id"], g["task_id"], g["status"]) for g in grants_in("app2")] == [(reward2, task2, "DISTRIBUTED")]
    assert grants_in("app1") == []
    stock = {app: call(fns["RewardsApi"], "GET", f"/v1/rewards/{rid}", "/v1/rewards/{reward_id}", who=who)[1]["stock"]
             for app, rid, who in (("app1", reward1, APP1), ("app2", reward2, APP2))}
    assert (stock["app1"]["issued"], stock["app2"]["issued"]) == (0, 1)
    # And a completion of app1 named by an event of app2 is unknown there: nothing is granted from it
    log = next(i for i in items_of(stack, "app2") if i["sk"].startswith("LOG#"))
    with pytest.raises(LookupError):
        grants.process({"tenant_id": "t1", "app_id": "app1", "task_id": task2, "completion_id": log["completion_id"]},
                       1)
    assert grants_in("app1") == []


def test_stats_count_in_the_app_the_message_or_event_names(fns, stack):
    # Given a visit sent by app2's back end, and a domain event of app2 (a visit through a promo code)
    visit = {"event_id": "v1", "event_type": "activity.visit", "topic_type": "activity", "topic_id": "42",
             "wu_id": "u1", "session_str": "s1", "ctime": clock.now_iso()}
    intake = json.dumps({"tenant_id": "t1", "app_id": "app2", "event": visit})
    bus = json.dumps({"detail-type": "track.visit", "source": "marketing.tracking", "time": clock.now_iso(),
                      "detail": {"event_id": "trk-1", "tenant_id": "t1", "app_id": "app2",
                                 "occurred_at": clock.now_iso(), "user_id": "u2", "referrer": "u1"}})
    records = [{**sample_event("stats_consumer/sqs_batch_with_poison.json")["Records"][0], "messageId": f"m{n}",
                "body": body} for n, body in enumerate((intake, bus))]
    # When the consumer counts them
    assert fns["StatsConsumer"]({"Records": records}) == {"batchItemFailures": []}

    # Then app2 sees them, app1 nothing
    def totals(who, topic):
        status, report = call(fns["StatsApi"], "GET", f"/v1/stats/{topic}", "/v1/stats/{topic_type}/{topic_id}",
                              who=who)
        assert status == 200
        return {k: v for k, v in report["totals"].items() if v}

    assert totals(APP2, "activity/42") == {"visits": 1, "visitors": 1}
    assert totals(APP2, "referrer/u1") == {"share_visits": 1, "share_visitors": 1}
    assert totals(APP1, "activity/42") == {} and totals(APP1, "referrer/u1") == {}
    day = clock.now().date().isoformat()
    records_of = {who["app_id"]: call(fns["StatsApi"], "GET", "/v1/stats/activity/42/records",
                                      "/v1/stats/{topic_type}/{topic_id}/records", who=who,
                                      query={"day": day})[1]["items"] for who in (APP1, APP2)}
    assert ([r["event_id"] for r in records_of["app2"]], records_of["app1"]) == (["v1"], [])


def test_the_code_batch_worker_writes_only_in_the_app_its_message_names(fns, stack):
    # Given a large batch of app1, whose first chunk is queued
    rid = made(fns["RewardsApi"], "POST", "/v1/rewards", "/v1/rewards", body={**COUPON, "total_stock": None})[
        "reward_id"]
    seed_campaign()
    status, batch = call(fns["RedeemApi"], "POST", "/v1/campaigns/c1/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes", body={"reward_id": rid, "count": 1001})
    assert status == 202
    sqs, url = boto3.client("sqs"), stack.queue_urls["CodeBatchQueue"]
    message = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
    work = json.loads(message["Body"])
    assert (work["tenant_id"], work["app_id"]) == ("t1", "app1")
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:CodeBatchQueue")
    # When the same work naming app2 comes with it, that one fails (app2 has no such batch) and writes nothing
    other = {**record, "messageId": "other", "body": json.dumps({**work, "app_id": "app2"})}
    answer = fns["CodeBatchWorker"]({"Records": [other, record]})
    assert answer["batchItemFailures"] == [{"itemIdentifier": "other"}]
    assert items_of(stack, "app2") == []
    # And the work as sent writes app1's codes, once
    assert sum(i["sk"] == "CODE" for i in items_of(stack, "app1")) == work["count"]


def test_the_sweeper_expires_each_apps_reservation_in_its_own_app(fns, stack):
    # Given the same reservation id pending in two apps, on rewards of their own
    rewards = {}
    for app, who in (("app1", APP1), ("app2", APP2)):
        rewards[app] = made(fns["RewardsApi"], "POST", "/v1/rewards", "/v1/rewards", who=who, body=COUPON)["reward_id"]
        made(fns["RewardsApi"], "POST", "/v1/inventory/reserve", "/v1/inventory/reserve", who=who,
             body={"reward_id": rewards[app], "user_id": "u1", "quantity": 2, "expire_minutes": 1,
                   "reservation_id": "r1"})
    # And both past their expiry (the reservations and their pointers moved back in time)
    table, past = rewards_dal.dynamo.table(), clock.iso(clock.now() - timedelta(minutes=5))
    for app in rewards:
        scope = f"t1#A#{app}"
        record = rewards_dal.get_reservation(scope, "r1")
        pointer = table.get_item(Key=rewards_dal.sweep_key(scope, record))["Item"]
        assert pointer["scope"] == scope
        table.delete_item(Key=rewards_dal.sweep_key(scope, record))
        moved = {**record, "expires_at": past}
        table.put_item(Item={**pointer, **rewards_dal.sweep_key(scope, moved), "expires_at": past})
        table.update_item(Key=rewards_dal.reservation_key(scope, "r1"), UpdateExpression="SET expires_at = :p",
                          ExpressionAttributeValues={":p": past})
    # When the sweeper runs, then each expires in its own app and each reward has its stock back
    assert fns["ReservationSweeper"](sample_event("reservation_sweeper/scheduled.json")) == {"expired": 2}
    for app, who in (("app1", APP1), ("app2", APP2)):
        status, reward = call(fns["RewardsApi"], "GET", f"/v1/rewards/{rewards[app]}", "/v1/rewards/{reward_id}",
                              who=who)
        assert reward["stock"] == {"total": 10, "available": 10, "reserved": 0, "issued": 0}
