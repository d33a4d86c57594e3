"""The campaign engine over HTTP against the local stack: the issue's end-to-end scenario, the seed service's
scenario list, repeat delivery, races, stock exhaustion and webhook retries."""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local_stack.template import load, parameter_defaults
from tests.e2e.conftest import Api
from tests.handlers.test_campaigns_api import Hook

CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2099-01-01T00:00:00Z", "status": "ACTIVE"}
COUPON = {"name": "5 off", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500}}


def eventually(check, timeout: float = 30, pause: float = 0.2):
    """Poll until `check()` answers something truthy (the bus and queues deliver asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(pause)


def ok(answer: requests.Response, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.text else {}


def reward(api: Api, stock: int | None = 10, **fields) -> dict:
    return ok(api.post("/v1/rewards", {**COUPON, "total_stock": stock, **fields}), 201)


def task_in_campaign(api: Api, reward_id: str, **task) -> tuple[str, str]:
    campaign = ok(api.post("/v1/campaigns", CAMPAIGN), 201)
    body = {"name": "Register", "task_type": "REGISTER", "event_type": "USER_REGISTER",
            "condition": {"type": "count", "operator": ">=", "value": 1}, "period": "ONCE", "max_count": 1,
            "reward_id": reward_id, **task}
    made = ok(api.post("/v1/tasks", body), 201)
    ok(api.post(f"/v1/campaigns/{campaign['campaign_id']}/tasks", {"task_id": made["task_id"]}), 201)
    return campaign["campaign_id"], made["task_id"]


def grants(api: Api, **query) -> list[dict]:
    return ok(api.get("/v1/reward-grants", params={**query, "limit": 100}))["items"]


def settled(api: Api, count: int, timeout: float = 40, **query) -> list[dict]:
    """The grants of a query once `count` of them reached a final status."""
    final = {"DISTRIBUTED", "FAILED"}
    found = eventually(lambda: (lambda g: g if len([x for x in g if x["status"] in final]) >= count else None)(
        grants(api, **query)), timeout=timeout)
    assert found, f"grants did not settle: {grants(api, **query)}"
    return found


def test_end_to_end_register_task_grants_a_distributed_reward(local_stack, tenant):
    # Given a campaign, a reward with a stock of 10 and a task (USER_REGISTER, count >= 1, max 1) linked to it
    api = local_stack.api(tenant)
    prize = reward(api, stock=10)
    campaign_id, task_id = task_in_campaign(api, prize["reward_id"])

    # When the app reports a registration
    accepted = ok(api.post("/v1/tasks/trigger", {"event_type": "USER_REGISTER", "user_id": "u-1",
                                                 "event_data": {"count": 1}}), 202)
    assert accepted["event_id"]

    # Then the grant is DISTRIBUTED, and the completion log and stats show the completion
    [grant] = settled(api, 1, task_id=task_id)
    assert (grant["status"], grant["user_id"], grant["campaign_id"]) == ("DISTRIBUTED", "u-1", campaign_id)
    assert grants(api, campaign_id=campaign_id) == [grant]
    logs = ok(api.get("/v1/task-completion-logs", params={"task_id": task_id}))["items"]
    assert [(log["user_id"], log["event_id"]) for log in logs] == [("u-1", accepted["event_id"])]
    stats = ok(api.get(f"/v1/tasks/{task_id}/completion-stats"))
    assert stats == {"task_id": task_id, "total_completions": 1, "unique_users": 1}
    stock = ok(api.get(f"/v1/rewards/{prize['reward_id']}"))["stock"]
    assert (stock["available"], stock["reserved"], stock["issued"]) == (9, 0, 1)
    # and the user sees the task completed
    mine = local_stack.api(tenant, sub="u-1", roles="user")
    view = ok(mine.get("/v1/users/u-1/tasks"))["items"]
    assert [(t["task_id"], t["progress"], t["completed"]) for t in view] == [(task_id, 1, True)]


def test_the_seed_scenarios(local_stack, tenant):
    api = local_stack.api(tenant)
    # health
    assert ok(local_stack.anonymous().get("/health")) == {"status": "UP"}
    # campaign, reward, task: create, get, list
    campaign = ok(api.post("/v1/campaigns", CAMPAIGN), 201)
    assert ok(api.get(f"/v1/campaigns/{campaign['campaign_id']}")) == campaign
    assert [c["campaign_id"] for c in ok(api.get("/v1/campaigns"))["items"]] == [campaign["campaign_id"]]
    prize = reward(api, stock=100)
    assert ok(api.get(f"/v1/rewards/{prize['reward_id']}"))["name"] == "5 off"
    task = ok(api.post("/v1/tasks", {"name": "Share", "task_type": "SHARE", "event_type": "SHARE",
                                     "condition": {"type": "count", "value": 2}, "period": "DAILY",
                                     "reward_id": prize["reward_id"]}), 201)
    assert ok(api.get(f"/v1/tasks/{task['task_id']}")) == task
    assert [t["task_id"] for t in ok(api.get("/v1/tasks"))["items"]] == [task["task_id"]]
    ok(api.post(f"/v1/campaigns/{campaign['campaign_id']}/tasks", {"task_id": task["task_id"]}), 201)
    assert [t["task_id"] for t in ok(api.get(f"/v1/campaigns/{campaign['campaign_id']}/tasks"))["items"]] == \
        [task["task_id"]]
    # bad campaign input, unknown reward
    bad = api.post("/v1/campaigns", {**CAMPAIGN, "name": "", "end_time": "2025-01-01T00:00:00Z"})
    assert bad.status_code == 422
    assert {"body.name", "body.end_time"} <= {d["field"] for d in bad.json()["error"]["details"]}
    unknown = api.post("/v1/tasks", {**task, "reward_id": "no-such-reward"})
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "reward_id"
    # reserve and confirm
    reservation = ok(api.post("/v1/inventory/reserve", {"reward_id": prize["reward_id"], "user_id": "u-9"}), 201)
    assert ok(api.post(f"/v1/inventory/{reservation['reservation_id']}/confirm"))["status"] == "CONFIRMED"
    # trigger twice (count 2): completion logs and stats
    for i in range(2):
        ok(api.post("/v1/tasks/trigger", {"event_type": "SHARE", "user_id": "u-2", "event_id": f"share-{i}"}), 202)
    settled(api, 1, task_id=task["task_id"])
    assert ok(api.get(f"/v1/tasks/{task['task_id']}/completion-stats"))["total_completions"] == 1
    logs = ok(api.get("/v1/task-completion-logs", params={"user_id": "u-2"}))["items"]
    assert [log["task_id"] for log in logs] == [task["task_id"]]
    # generate codes, redeem one
    batch = ok(api.post(f"/v1/campaigns/{campaign['campaign_id']}/redeem-codes",
                        {"reward_id": prize["reward_id"], "count": 3}), 201)
    export = ok(api.post(f"/v1/redeem-code-batches/{batch['batch_id']}/export", {"format": "csv", "count": 1}), 201)
    rows = list(csv.DictReader(io.StringIO(requests.get(export["url"], timeout=10).text)))
    code = rows[0]["code"]
    assert ok(api.post("/v1/redeem", {"code": code, "user_id": "u-3"}))["status"] in ("DISTRIBUTED", "USED")
    assert api.post("/v1/redeem", {"code": code, "user_id": "u-4"}).status_code == 409


def test_a_redeem_code_reward_and_an_invite_task(local_stack, tenant):
    # Given an INVITE task (2 friends) listening to track.new_user, rewarded with a redeem code
    api = local_stack.api(tenant)
    prize = reward(api, stock=None, name="Gift code", reward_type="REDEEM_CODE", content={"description": "gift"})
    _, task_id = task_in_campaign(api, prize["reward_id"], name="Invite 2", task_type="INVITE",
                                  event_type="track.new_user", condition={"type": "count", "value": 2})
    promo = ok(api.get("/tracks/alice/2"))

    # When two friends register through alice's promo code (and one registration is reported twice)
    for friend in ("bob", "carol", "carol"):
        assert api.post("/tracks", {"user_id": friend, "track_type": 2, "promcode": promo["promcode"]}).ok

    # Then alice (the referrer) gets one code
    [grant] = settled(api, 1, task_id=task_id)
    assert (grant["user_id"], grant["status"]) == ("alice", "DISTRIBUTED")
    assert len(grant["details"]["code_suffix"]) == 4
    view = ok(local_stack.api(tenant, sub="alice", roles="user").get("/v1/users/alice/tasks"))["items"]
    assert [(t["progress"], t["completed"]) for t in view] == [(2, True)]


def test_the_same_event_delivered_five_times_completes_and_grants_once(local_stack, tenant):
    api = local_stack.api(tenant)
    prize = reward(api)
    _, task_id = task_in_campaign(api, prize["reward_id"])
    body = {"event_type": "USER_REGISTER", "user_id": "u-1", "event_id": "evt-fixed"}
    for _ in range(5):
        ok(api.post("/v1/tasks/trigger", body), 202)
    # the same bus event straight into the engine, five more times
    event = {"version": "0", "id": "x", "detail-type": "task.triggered", "source": "marketing.campaigns",
             "account": "123456789012", "time": "2026-11-23T16:00:00Z", "region": "us-east-1", "resources": [],
             "detail": {"event_id": "evt-fixed", "tenant_id": tenant, "app_id": "app1",
                        "occurred_at": "2026-11-23T16:00:00.000Z", "event_type": "USER_REGISTER",
                        "user_id": "u-1", "event_data": {}, "user_attributes": {}}}
    for _ in range(5):
        requests.post(f"{local_stack.api_url}/_local/invoke/TaskTriggerFunction", json=event, timeout=30)
    settled(api, 1, task_id=task_id)
    time.sleep(1.5)  # let any duplicate completion or grant show up
    assert len(grants(api, task_id=task_id)) == 1
    assert ok(api.get(f"/v1/tasks/{task_id}/completion-stats"))["total_completions"] == 1
    assert len(ok(api.get("/v1/task-completion-logs", params={"task_id": task_id}))["items"]) == 1


def _engine_event(tenant: str, user: str, event_id: str) -> dict:
    return {"version": "0", "id": event_id, "detail-type": "task.triggered", "source": "marketing.campaigns",
            "account": "123456789012", "time": "2026-11-23T16:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"event_id": event_id, "tenant_id": tenant, "app_id": "app1",
                       "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                       "event_type": "USER_REGISTER", "user_id": user, "event_data": {}, "user_attributes": {}}}


def _race(local_stack, events: list[dict], concurrency: int = 20) -> list[dict]:
    """Events in concurrent invocations of the engine (a container each, as in Lambda)."""
    def invoke(event: dict) -> dict:
        answer = requests.post(f"{local_stack.api_url}/_local/invoke/TaskTriggerFunction", json=event, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    with ThreadPoolExecutor(min(concurrency, len(events))) as pool:
        return list(pool.map(invoke, events))


def test_twenty_racing_events_for_a_max_count_one_task_grant_once(local_stack, tenant):
    api = local_stack.api(tenant)
    prize = reward(api)
    _, task_id = task_in_campaign(api, prize["reward_id"])
    answers = _race(local_stack, [_engine_event(tenant, "racer", f"evt-{i}") for i in range(20)])
    outcomes = sorted(a["outcomes"][0]["outcome"] for a in answers)
    assert outcomes.count("COMPLETED") == 1, outcomes
    assert set(outcomes) <= {"COMPLETED", "ALREADY_COMPLETE", "COUNTED"}
    [grant] = settled(api, 1, task_id=task_id)
    time.sleep(1)
    assert len(grants(api, task_id=task_id)) == 1 and grant["status"] == "DISTRIBUTED"
    stats = ok(api.get(f"/v1/tasks/{task_id}/completion-stats"))
    assert (stats["total_completions"], stats["unique_users"]) == (1, 1)


def test_stock_of_ten_with_fifty_users_distributes_ten(local_stack, tenant):
    api = local_stack.api(tenant)
    prize = reward(api, stock=10)
    _, task_id = task_in_campaign(api, prize["reward_id"])
    answers = _race(local_stack, [_engine_event(tenant, f"user-{i}", f"evt-{i}") for i in range(50)])
    assert [a["outcomes"][0]["outcome"] for a in answers] == ["COMPLETED"] * 50
    done = settled(api, 50, timeout=90, task_id=task_id)
    assert sum(g["status"] == "DISTRIBUTED" for g in done) == 10
    failed = [g for g in done if g["status"] == "FAILED"]
    assert len(failed) == 40 and {g["reason"] for g in failed} == {"out of stock"}
    stock = ok(api.get(f"/v1/rewards/{prize['reward_id']}"))["stock"]
    assert (stock["available"], stock["reserved"], stock["issued"]) == (0, 0, 10)
    pending = ok(api.get("/v1/inventory/reservations", params={"reward_id": prize["reward_id"],
                                                               "status": "PENDING"}))["items"]
    assert pending == []


@pytest.mark.parametrize(("failures", "status", "attempts"), [(2, "DISTRIBUTED", 3), (1000, "FAILED", 4)])
def test_webhook_retries_with_backoff_then_succeeds_or_fails(local_stack, tenant, failures, status, attempts):
    # Given a webhook reward whose receiver fails `failures` times, with its HMAC secret in Secrets Manager
    stage = parameter_defaults(load())["Stage"]
    secret_name = "webhook"  # the app's own secret, under its tenant's and its prefix
    local_stack.client("secretsmanager").create_secret(
        Name=f"marketing/{stage}/tenants/{tenant}/apps/app1/{secret_name}", SecretString="hook-secret")
    hook = Hook(failures)
    api = local_stack.api(tenant)
    try:
        prize = reward(api, stock=3, distributor={"type": "webhook", "url": hook.url, "secret_name": secret_name})
        _, task_id = task_in_campaign(api, prize["reward_id"])
        ok(api.post("/v1/tasks/trigger", {"event_type": "USER_REGISTER", "user_id": "u-1"}), 202)
        [grant] = settled(api, 1, timeout=60, task_id=task_id)
    finally:
        hook.close()
    # Then it ends DISTRIBUTED after 3 attempts, or FAILED after 4 with the stock returned
    assert grant["status"] == status and len(hook.calls) == attempts
    assert {json.loads(body)["grant_id"] for _, body in hook.calls} == {grant["grant_id"]}
    stock = ok(api.get(f"/v1/rewards/{prize['reward_id']}"))["stock"]
    if status == "FAILED":
        assert "after 4 attempts" in grant["reason"]
        assert (stock["available"], stock["reserved"], stock["issued"]) == (3, 0, 0)
    else:
        assert grant["details"]["attempts"] == 3
        assert (stock["available"], stock["reserved"], stock["issued"]) == (2, 0, 1)
