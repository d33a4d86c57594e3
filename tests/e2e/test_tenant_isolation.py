"""Tenant and app isolation across every capability, over HTTP against the local stack.

App `app1` of tenant A builds a little of everything: promo codes and arrivals; rewards, reservations, a
redeem-code batch and grants; campaigns, audiences, tasks and completions; an affiliate chain and signed CPS
orders; stats events. Two intruders, each with an admin token of its own and the same `sub` as A's operator,
then read, list, change and page through A's ids: tenant B (`other-tenant`), and app `app2` of the same tenant
A (`other-app`). For both, every read by id is a 404, no list shows anything of A's app, every write fails
with a 4xx and A re-reads its data unchanged, A's page tokens are a 400, and a request naming A's tenant (or
app) is a 403. A `user` token of A acts only on its own user id. Every answer is recorded: none may be a 5xx.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from marketing.cps.signing import signed_headers
from tests.e2e.conftest import Api
from tests.e2e.seeding import new_campaign

ANSWERS: list[tuple[str, str, int]] = []  # (method, path, status) of every request this module makes

CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2099-01-01T00:00:00Z", "status": "ACTIVE"}
COUPON = {"name": "5 off", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500}}
CPS_SETTINGS = {"levels": 2, "rates_bp": [5000, 3000, 1000], "hold_days": 3}
ORDER_DAY = "2026-11-20"


class Recorded(Api):
    """An Api client that keeps every answer's status for the final no-5xx check."""

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        answer = super().request(method, path, **kwargs)
        ANSWERS.append((method, path, answer.status_code))
        return answer


def ok(answer: requests.Response, status: int = 200) -> Any:
    assert answer.status_code == status, f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text}"
    return answer.json() if answer.text else None


def eventually(check, timeout: float = 30.0):
    """Poll until `check()` is truthy (the bus and the queues deliver asynchronously)."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return result


def fill(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every `{name}` in its strings (and its keys) replaced by the world's id of that name."""
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {fill(k, ids): fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


@dataclass(frozen=True)
class Call:
    """One request; its path (query string included) and body name the world's ids as `{name}`."""

    method: str
    path: str
    body: Any = None

    def send(self, api: Api, ids: dict[str, str], **kwargs) -> requests.Response:
        body = fill(self.body, ids)
        return api.request(self.method, fill(self.path, ids), **({"json": body} if body is not None else {}),
                           **kwargs)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Intruder:
    """Someone outside A's app: an admin of another tenant, or of another app of tenant A (same sub)."""

    name: str
    tenant: str
    app: str
    api: Api
    ids: dict[str, str]  # A's ids, plus the intruder's own (`b_reward`, `b_batch`, ...) and what it may name


@dataclass
class World:
    stack: Any
    a: Api  # the operator (admin) of app1 of tenant A
    intruders: dict[str, Intruder]
    ids: dict[str, str]
    secrets: list[str]  # values unique to A's app: none may appear in an answer to an intruder

    def user(self, tenant_key: str, sub: str) -> Api:
        return Recorded(self.stack.api_url, self.stack.token(self.ids[tenant_key], sub=sub, roles="user"))

    def leaks(self, answer: requests.Response) -> list[str]:
        """A's values in the answer, other than those the request named itself (an error may echo an id)."""
        asked = answer.request.url + str(answer.request.body or "")
        return [s for s in self.secrets if s in answer.text and s not in asked]


INTRUDERS = ("other-tenant", "other-app")


@pytest.fixture(params=INTRUDERS)
def intruder(world, request) -> Intruder:
    return world.intruders[request.param]


def webhook(stack, tenant: str, order: dict, *, app: str = "app1",
            signed_for: tuple[str, str] | None = None) -> requests.Response:
    raw = json.dumps(order).encode()
    headers = {"Content-Type": "application/json", **signed_headers(*(signed_for or (tenant, app)), "fake", raw)}
    path = f"/v1/cps/{tenant}/{app}/fake/orders"
    answer = requests.post(f"{stack.api_url}{path}", data=raw, headers=headers, timeout=30)
    ANSWERS.append(("POST", path, answer.status_code))
    return answer


def order_body(order_id: str, pid: str, day: str = ORDER_DAY) -> dict:
    return {"order_id": order_id, "status": "PAID", "pid": pid, "pay_price": 5000, "commission": 1000,
            "refund_price": 0, "title": "Lunch set", "paid_at": f"{day}T12:00:00Z"}


def visits(prefix: str, topic: str, count: int) -> list[dict]:
    return [{"event_id": f"{prefix}-{n}", "event_type": "activity.visit", "topic_type": "activity",
             "topic_id": topic, "wu_id": f"visitor-{n}"} for n in range(count)]


def build_tenant_a(a: Api, svc: Api, stack, tenant: str, ids: dict[str, str]) -> None:
    # tracking: alice's new-user code, two arrivals through it and two visits she referred; a track type
    ids["promo"] = ok(a.get("/tracks/alice/2"))["promcode"]
    for user in ("bob", "carol"):
        ok(svc.post("/tracks", {"user_id": user, "track_type": 2, "promcode": ids["promo"]}), 201)
    for user in ("dave", "erin"):
        ok(svc.post("/tracks", {"user_id": user, "track_type": 1, "referrer": "alice"}), 201)
    ok(a.put("/track-types/5", {"name": "a_only_type"}), 201)

    # rewards: one for the tasks (its stock moves as grants arrive), one whose state stays put
    ids["task_reward"] = ok(a.post("/v1/rewards", {**COUPON, "total_stock": None}), 201)["reward_id"]
    ids["reward"] = ok(a.post("/v1/rewards", {**COUPON, "name": "A gift", "total_stock": 100}), 201)["reward_id"]
    for user, key in (("bob", "reservation"), ("carol", "reservation2")):
        ids[key] = ok(svc.post("/v1/inventory/reserve", {"reward_id": ids["reward"], "user_id": user,
                                                         "expire_minutes": 600}), 201)["reservation_id"]
    batch = ok(a.post(f"/v1/campaigns/{new_campaign(a)}/redeem-codes", {"reward_id": ids["reward"], "count": 3}),
               201)
    ids["batch"] = batch["batch_id"]
    exported = ok(a.post(f"/v1/redeem-code-batches/{ids['batch']}/export", {"format": "csv"}), 201)
    rows = requests.get(exported["url"], timeout=30).text.strip().splitlines()[1:]
    ids["used_code"], ids["used_code2"], ids["code"] = (row.split(",")[0] for row in rows)
    ids["grant"] = ok(svc.post("/v1/redeem", {"code": ids["used_code"], "user_id": "bob"}))["grant_id"]
    ids["grant2"] = ok(svc.post("/v1/redeem", {"code": ids["used_code2"], "user_id": "carol"}))["grant_id"]

    # campaigns: two audiences, two campaigns, two tasks linked to the first; completions come from events
    ids["audience"] = ok(a.post("/v1/audiences", {"name": "all", "audience_type": "ALL"}), 201)["audience_id"]
    ids["audience2"] = ok(a.post("/v1/audiences", {"name": "vip", "audience_type": "LIST",
                                                   "user_ids": ["u1", "u2"]}), 201)["audience_id"]
    ids["campaign"] = ok(a.post("/v1/campaigns", {**CAMPAIGN, "audience_id": ids["audience"]}), 201)["campaign_id"]
    ids["campaign2"] = ok(a.post("/v1/campaigns", CAMPAIGN), 201)["campaign_id"]
    for key, event_type in (("task", "USER_REGISTER"), ("task2", "SIGN_IN")):
        ids[key] = ok(a.post("/v1/tasks", {
            "name": key, "task_type": "CUSTOM", "event_type": event_type, "period": "ONCE",
            "condition": {"type": "count", "operator": ">=", "value": 1}, "reward_id": ids["task_reward"]}),
            201)["task_id"]
        ok(a.post(f"/v1/campaigns/{ids['campaign']}/tasks", {"task_id": ids[key]}), 201)
    for event_type, user in (("USER_REGISTER", "u1"), ("USER_REGISTER", "u2"), ("SIGN_IN", "u1")):
        ok(svc.post("/v1/tasks/trigger", {"event_type": event_type, "user_id": user, "event_data": {}}), 202)

    # CPS: settings of its own, P invites Q and S, Q invites V; two orders through V's pid
    ok(a.put("/v1/cps/settings", CPS_SETTINGS))
    ids["invite"] = ok(a.post("/v1/affiliates", {"user_id": "p-root"}), 201)["invite_code"]
    for user in ("q", "s"):
        joined = ok(a.post("/v1/affiliates", {"user_id": user, "invite_code": ids["invite"]}), 201)
        ids[f"invite_{user}"] = joined["invite_code"]
    ids["pid"] = ok(a.post("/v1/affiliates", {"user_id": "v", "invite_code": ids["invite_q"]}), 201)["pid"]
    for key in ("order", "order2"):
        ids[key] = f"o-{uuid.uuid4().hex[:12]}"
        assert ok(webhook(stack, tenant, order_body(ids[key], ids["pid"])))["entries"] == 3

    # stats: three visits of one activity
    ok(svc.post("/v1/events", {"events": visits(ids["events_a"], ids["topic"], 3)}), 202)


def build_intruder(b: Api, ids: dict[str, str]) -> None:
    """The intruder's own reward, batch, campaign and task (to page its own lists with A's tokens), one
    completion and two visits of the same topic id as A's."""
    ids["b_reward"] = ok(b.post("/v1/rewards", {**COUPON, "total_stock": 10}), 201)["reward_id"]
    ids["b_batch"] = ok(b.post(f"/v1/campaigns/{new_campaign(b)}/redeem-codes",
                               {"reward_id": ids["b_reward"], "count": 2}), 201)["batch_id"]
    ids["b_campaign"] = ok(b.post("/v1/campaigns", CAMPAIGN), 201)["campaign_id"]
    ids["b_task"] = ok(b.post("/v1/tasks", {
        "name": "b", "task_type": "REGISTER", "event_type": "USER_REGISTER", "period": "ONCE",
        "condition": {"type": "count", "operator": ">=", "value": 1}, "reward_id": ids["b_reward"]}), 201)["task_id"]
    ok(b.post(f"/v1/campaigns/{ids['b_campaign']}/tasks", {"task_id": ids["b_task"]}), 201)
    ok(b.post("/v1/tasks/trigger", {"event_type": "USER_REGISTER", "user_id": "u1", "event_data": {}}), 202)
    ok(b.post("/v1/events", {"events": visits(ids["events_b"], ids["topic"], 2)}), 202)


def items(api: Api, path: str, **query) -> list[dict]:
    return ok(api.get(path, params={**query, "limit": 100}))["items"]


@pytest.fixture(scope="module")
def world(local_stack) -> World:
    run = uuid.uuid4().hex[:8]
    ids = {"tenant_a": f"t-iso-a-{run}", "tenant_b": f"t-iso-b-{run}", "app_a": "app1", "topic": f"act-{run}",
           "today": datetime.now(UTC).date().isoformat(), "day": ORDER_DAY, "events_a": f"ev-a-{run}"}
    stack = local_stack
    a = Recorded(stack.api_url, stack.token(ids["tenant_a"]))
    svc = Recorded(stack.api_url, stack.token(ids["tenant_a"], sub="backend", roles="service"))
    build_tenant_a(a, svc, stack, ids["tenant_a"], ids)
    intruders = {}
    # (name, tenant, app, the field a request names A by, A's value of it, the intruder's own value)
    for name, tenant, app, field in (("other-tenant", ids["tenant_b"], "app1", "tenant_id"),
                                     ("other-app", ids["tenant_a"], "app2", "app_id")):
        api = Recorded(stack.api_url, stack.token(tenant, app=app))
        own = {**ids, "events_b": f"ev-{name}-{run}", "field": field,
               "theirs": ids["tenant_a"] if field == "tenant_id" else ids["app_a"],
               "mine": tenant if field == "tenant_id" else app}
        build_intruder(api, own)
        intruders[name] = Intruder(name, tenant, app, api, own)

    # Wait for the asynchronous parts: completions (by task and by user), and every visit counted.
    others = list(intruders.values())
    assert eventually(lambda: len(items(a, "/v1/task-completion-logs", task_id=ids["task"])) == 2
                      and len(items(a, "/v1/task-completion-logs", user_id="u1")) == 2
                      and all(len(items(o.api, "/v1/task-completion-logs", task_id=o.ids["b_task"])) == 1
                              for o in others))
    topic = f"/v1/stats/activity/{ids['topic']}"
    assert eventually(lambda: ok(a.get(topic))["totals"]["visits"] == 3
                      and all(ok(o.api.get(topic))["totals"]["visits"] == 2 for o in others))

    unique = ("promo", "task_reward", "reward", "reservation", "reservation2", "batch", "used_code", "used_code2",
              "code", "grant", "grant2", "audience", "audience2", "campaign", "campaign2", "task", "task2", "invite",
              "invite_q", "invite_s", "pid", "order", "order2", "events_a")
    return World(stack, a, intruders, ids, [ids[k] for k in unique] + ["a_only_type"])


@pytest.fixture(autouse=True)
def no_server_errors():
    """Whatever a test asserts, none of its answers may be a 5xx."""
    start = len(ANSWERS)
    yield
    failures = [answer for answer in ANSWERS[start:] if answer[2] >= 500]
    assert not failures, f"server errors: {failures}"


# --- 2. another tenant, or another app of the tenant, reads, lists and writes A's ids -----------------------

READS_BY_ID = [
    Call("GET", "/promos/{promo}"),
    Call("GET", "/promos/{promo}/qrcode.svg"),
    Call("GET", "/v1/rewards/{reward}"),
    Call("GET", "/v1/reward-grants/{grant}"),
    Call("GET", "/v1/redeem-code-batches/{batch}"),
    Call("GET", "/v1/redeem-codes/{code}"),
    Call("GET", "/v1/redeem-codes/{used_code}"),
    Call("GET", "/v1/redeem-codes?batch_id={batch}"),
    Call("GET", "/v1/campaigns/{campaign}"),
    Call("GET", "/v1/campaigns/{campaign}/tasks"),
    Call("GET", "/v1/audiences/{audience}"),
    Call("POST", "/v1/audiences/{audience}/match", {"user_id": "u1"}),
    Call("GET", "/v1/tasks/{task}"),
    Call("GET", "/v1/tasks/{task}/completion-stats"),
    Call("GET", "/v1/affiliates/p-root"),
    Call("GET", "/v1/affiliates/v/upline"),
    Call("GET", "/v1/cps/orders/fake/{order}"),
]


@pytest.mark.parametrize("call", READS_BY_ID, ids=str)
def test_reads_by_id_from_another_tenant_or_app_are_404(world, intruder, call):
    answer = call.send(intruder.api, intruder.ids)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"].endswith("NOT_FOUND") and not world.leaks(answer)


LISTS = [
    Call("GET", "/tracks?referrer=alice"),
    Call("GET", "/tracks/summary?referrer=alice"),
    Call("GET", "/track-types"),
    Call("GET", "/v1/rewards"),
    Call("GET", "/v1/inventory/reservations?reward_id={reward}"),
    Call("GET", "/v1/reward-grants"),
    Call("GET", "/v1/reward-grants?user_id=bob"),
    Call("GET", "/v1/reward-grants?task_id={task}"),
    Call("GET", "/v1/reward-grants?reward_id={reward}"),
    Call("GET", "/v1/campaigns"),
    Call("GET", "/v1/audiences"),
    Call("GET", "/v1/tasks"),
    Call("GET", "/v1/task-completion-logs?task_id={task}"),
    Call("GET", "/v1/task-completion-logs?user_id=u1"),
    Call("GET", "/v1/users/u1/tasks"),
    Call("GET", "/v1/affiliates/p-root/downline"),
    Call("GET", "/v1/affiliates/p-root/downline?level=2"),
    Call("GET", "/v1/affiliates/v/commissions"),
    Call("GET", "/v1/affiliates/p-root/commissions?status=pending"),
    Call("GET", "/v1/cps/settings"),
    Call("GET", "/v1/stats/activity/{topic}/records?day={today}"),
]


@pytest.mark.parametrize("call", LISTS, ids=str)
def test_lists_of_another_tenant_or_app_show_nothing_of_a(world, intruder, call):
    answer = call.send(intruder.api, intruder.ids)
    assert answer.status_code == 200, answer.text
    assert not world.leaks(answer)
    body = answer.json()
    if call.path.startswith(("/tracks?", "/v1/inventory", "/v1/affiliates", "/v1/reward-grants?")):
        assert body["items"] == []
    if call.path.startswith("/tracks/summary"):
        assert body["counts"] == {}
    if call.path == "/v1/cps/settings":
        assert body["rates_bp"] != CPS_SETTINGS["rates_bp"]
    if "records" in call.path:
        assert {r["event_id"] for r in body["items"]} == {f"{intruder.ids['events_b']}-{n}" for n in range(2)}


def test_totals_of_another_tenant_or_app_count_only_its_own_facts(world, intruder):
    b, ids = intruder.api, world.ids
    earnings = ok(b.get("/v1/affiliates/v/earnings"))
    assert (earnings["pending"], earnings["available"], earnings["reversed"]) == (0, 0, 0)
    recon = ok(b.get("/v1/cps/reconciliation", params={"date": ORDER_DAY}))
    assert (recon["orders"], recon["both"], recon["webhook_only"]) == (0, 0, [])
    assert ok(b.get(f"/v1/stats/activity/{ids['topic']}"))["totals"]["visits"] == 2
    assert ok(world.a.get(f"/v1/stats/activity/{ids['topic']}"))["totals"]["visits"] == 3
    chart = b.get(f"/v1/stats/activity/{ids['topic']}/chart.svg", params={"metric": "visits"})
    assert chart.status_code == 200 and "<svg" in chart.text
    # The intruder's completion is its own: A's task still counts its own two
    assert ok(world.a.get(f"/v1/tasks/{ids['task']}/completion-stats"))["total_completions"] == 2


RESERVATIONS = "/v1/inventory/reservations?reward_id={reward}"
LINKS = "/v1/campaigns/{campaign}/tasks"
# (B's write on A's ids, the status B gets, what A re-reads to see nothing changed)
WRITES = [
    (Call("PUT", "/v1/rewards/{reward}", {**COUPON, "name": "hacked"}), 404, "/v1/rewards/{reward}"),
    (Call("DELETE", "/v1/rewards/{reward}"), 404, "/v1/rewards/{reward}"),
    (Call("POST", "/v1/rewards/{reward}/stock", {"delta": -97}), 404, "/v1/rewards/{reward}"),
    (Call("POST", "/v1/inventory/reserve", {"reward_id": "{reward}", "user_id": "bob"}), 404, "/v1/rewards/{reward}"),
    (Call("POST", "/v1/inventory/reserve", {"reward_id": "{reward}", "user_id": "bob",
                                            "reservation_id": "{reservation}"}), 404, RESERVATIONS),
    (Call("POST", "/v1/inventory/{reservation}/confirm"), 404, RESERVATIONS),
    (Call("POST", "/v1/inventory/{reservation2}/cancel"), 404, RESERVATIONS),
    (Call("PUT", "/v1/reward-grants/{grant}/status", {"status": "USED"}), 404, "/v1/reward-grants/{grant}"),
    (Call("POST", "/v1/reward-grants/{grant}/rollback"), 404, "/v1/reward-grants/{grant}"),
    (Call("POST", "/v1/campaigns/{campaign}/redeem-codes", {"reward_id": "{reward}", "count": 5}), 404,
     "/v1/rewards/{reward}"),
    (Call("POST", "/v1/redeem-code-batches/{batch}/export", {"format": "csv"}), 404,
     "/v1/redeem-code-batches/{batch}"),
    (Call("POST", "/v1/redeem-codes/{code}/assign", {"user_id": "mallory"}), 404, "/v1/redeem-codes/{code}"),
    (Call("POST", "/v1/redeem-codes/{code}/revoke"), 404, "/v1/redeem-codes/{code}"),
    (Call("POST", "/v1/redeem", {"code": "{code}", "user_id": "mallory"}), 404, "/v1/redeem-codes/{code}"),
    (Call("POST", "/v1/redeem", {"code": "{used_code}", "user_id": "bob"}), 404, "/v1/reward-grants/{grant}"),
    (Call("PUT", "/v1/campaigns/{campaign}", {**CAMPAIGN, "name": "hacked"}), 404, "/v1/campaigns/{campaign}"),
    (Call("DELETE", "/v1/campaigns/{campaign2}"), 404, "/v1/campaigns/{campaign2}"),
    (Call("POST", LINKS, {"task_id": "{task}"}), 404, LINKS),
    (Call("DELETE", "/v1/campaigns/{campaign}/tasks/{task}"), 404, LINKS),
    (Call("POST", "/v1/campaigns/{b_campaign}/tasks", {"task_id": "{task}"}), 422, "/v1/tasks/{task}"),
    (Call("POST", "/v1/campaigns", {**CAMPAIGN, "audience_id": "{audience2}"}), 422, "/v1/audiences/{audience2}"),
    (Call("PUT", "/v1/audiences/{audience}", {"name": "hacked", "audience_type": "ALL"}), 404,
     "/v1/audiences/{audience}"),
    (Call("DELETE", "/v1/audiences/{audience2}"), 404, "/v1/audiences/{audience2}"),
    (Call("PUT", "/v1/tasks/{task}", {"name": "hacked", "task_type": "CUSTOM", "event_type": "USER_REGISTER",
                                      "period": "ONCE", "condition": {"type": "count", "value": 1},
                                      "reward_id": "{b_reward}"}), 404, "/v1/tasks/{task}"),
    (Call("DELETE", "/v1/tasks/{task2}"), 404, "/v1/tasks/{task2}"),
    (Call("POST", "/v1/tasks", {"name": "x", "task_type": "CUSTOM", "event_type": "USER_REGISTER", "period": "ONCE",
                                "condition": {"type": "count", "value": 1}, "reward_id": "{task_reward}"}), 422,
     "/v1/tasks"),
    (Call("POST", "/tracks", {"user_id": "mallory", "track_type": 2, "promcode": "{promo}"}), 422,
     "/tracks/summary?referrer=alice"),
    (Call("POST", "/v1/affiliates", {"user_id": "mallory", "invite_code": "{invite}"}), 422,
     "/v1/affiliates/p-root/downline"),
]


@pytest.mark.parametrize(("call", "status", "reread"), WRITES, ids=[str(w[0]) for w in WRITES])
def test_writes_of_another_tenant_or_app_on_a_fail_and_change_nothing(world, intruder, call, status, reread):
    before = ok(Call("GET", reread).send(world.a, world.ids))
    answer = call.send(intruder.api, intruder.ids)
    assert answer.status_code == status, answer.text
    assert not world.leaks(answer)
    assert ok(Call("GET", reread).send(world.a, world.ids)) == before


def test_the_same_ids_in_another_tenant_or_app_are_its_own(world, intruder):
    """The intruder's alice, q, track type, settings and reward ids live apart from A's: its writes succeed in
    its own tenant or app only."""
    a, b, ids = world.a, intruder.api, world.ids
    a_view = {path: ok(a.get(path)) for path in ("/tracks/alice/2", "/v1/affiliates/q", "/track-types",
                                                 "/v1/cps/settings")}
    assert ok(b.get("/tracks/alice/2"))["promcode"] != ids["promo"]
    b_q = ok(b.post("/v1/affiliates", {"user_id": "q"}), 201)
    assert b_q["inviter_id"] is None and b_q["pid"] != a_view["/v1/affiliates/q"]["pid"]
    ok(b.put("/track-types/7", {"name": "b_only_type"}), 201)
    ok(b.put("/v1/cps/settings", {"levels": 1, "rates_bp": [9000, 1000], "hold_days": 0}))
    assert {path: ok(a.get(path)) for path in a_view} == a_view


def test_an_idempotency_key_replays_only_within_its_tenant_and_app(world, intruder):
    key = {"Idempotency-Key": f"iso-{uuid.uuid4().hex}"}
    body = {**COUPON, "name": "same key", "total_stock": 5}
    mine = ok(world.a.post("/v1/rewards", body, headers=dict(key)), 201)
    assert ok(world.a.post("/v1/rewards", body, headers=dict(key)), 201) == mine  # A's replay
    theirs = ok(intruder.api.post("/v1/rewards", body, headers=dict(key)), 201)
    assert theirs["reward_id"] != mine["reward_id"]
    assert intruder.api.get(f"/v1/rewards/{mine['reward_id']}").status_code == 404


def test_a_webhook_acts_only_in_the_tenant_and_app_its_signature_binds(world, intruder):
    stack, a, ids = world.stack, world.a, world.ids
    order = f"/v1/cps/orders/fake/{ids['order']}"
    before = (ok(a.get(order)), ok(a.get("/v1/affiliates/v/earnings")))
    # The intruder's key on A's URL, and A's signed order replayed to the intruder's URL: refused, nothing stored
    assert webhook(stack, ids["tenant_a"], order_body(f"o-{uuid.uuid4().hex[:8]}", ids["pid"]),
                   signed_for=(intruder.tenant, intruder.app)).status_code == 401
    assert webhook(stack, intruder.tenant, order_body(f"o-{uuid.uuid4().hex[:8]}", ids["pid"]), app=intruder.app,
                   signed_for=(ids["tenant_a"], "app1")).status_code == 401
    # The intruder's own order, with A's order id and pid (another day, so its reconciliation test keeps its day
    # empty): its order, no promoter, nobody of A paid
    stored = ok(webhook(stack, intruder.tenant, order_body(ids["order"], ids["pid"], day="2026-11-21"),
                        app=intruder.app))
    assert stored["entries"] == 0
    assert ok(intruder.api.get(order))["promoter_id"] is None
    assert (ok(a.get(order)), ok(a.get("/v1/affiliates/v/earnings"))) == before


# --- 3. a request naming A's tenant (or app) from another tenant's (or app's) token ----------------------

# `{field}` is `tenant_id` for the other tenant, `app_id` for the other app; `{theirs}` is A's value of it.
NAMING_A = [
    Call("GET", "/tracks?referrer=alice&{field}={theirs}"),
    Call("GET", "/v1/rewards?{field}={theirs}"),
    Call("GET", "/v1/reward-grants?{field}={theirs}"),
    Call("GET", "/v1/campaigns?{field}={theirs}"),
    Call("GET", "/v1/affiliates/v/earnings?{field}={theirs}"),
    Call("GET", "/v1/cps/settings?{field}={theirs}"),
    Call("GET", "/v1/stats/activity/{topic}?{field}={theirs}"),
    Call("POST", "/tracks", {"{field}": "{theirs}", "user_id": "x", "track_type": 1, "referrer": "alice"}),
    Call("POST", "/v1/rewards", {"{field}": "{theirs}", **COUPON}),
    Call("POST", "/v1/rewards?{field}={mine}", {"{field}": "{theirs}", **COUPON}),
    Call("POST", "/v1/inventory/reserve", {"{field}": "{theirs}", "reward_id": "{reward}", "user_id": "bob"}),
    Call("POST", "/v1/redeem", {"{field}": "{theirs}", "code": "{code}", "user_id": "bob"}),
    Call("POST", "/v1/campaigns", {"{field}": "{theirs}", **CAMPAIGN}),
    Call("POST", "/v1/audiences", {"{field}": "{theirs}", "name": "x", "audience_type": "ALL"}),
    Call("POST", "/v1/tasks/trigger", {"{field}": "{theirs}", "event_type": "USER_REGISTER", "user_id": "u3"}),
    Call("POST", "/v1/affiliates", {"{field}": "{theirs}", "user_id": "mallory"}),
    Call("PUT", "/v1/cps/settings", {"{field}": "{theirs}", **CPS_SETTINGS}),
    Call("POST", "/v1/events", {"{field}": "{theirs}", "events": visits("forged", "{topic}", 1)}),
]
# What a refused request could have written, re-read by A and the intruder.
NAMING_A_REREADS = ["/v1/rewards", "/v1/campaigns", "/v1/audiences", "/v1/cps/settings",
                    "/tracks/summary?referrer=alice", "/v1/affiliates/mallory/upline"]


@pytest.mark.parametrize("call", NAMING_A, ids=str)
def test_a_request_naming_another_tenant_or_app_is_403_and_writes_nothing(world, intruder, call):
    def state():
        return [(answer.status_code, answer.text) for answer in
                (api.get(fill(path, world.ids)) for api in (world.a, intruder.api) for path in NAMING_A_REREADS)]

    before = state()
    answer = call.send(intruder.api, intruder.ids)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "FORBIDDEN"
    assert state() == before


def test_a_user_token_naming_another_tenant_or_app_is_403(world):
    ids = world.ids
    other_app = Recorded(world.stack.api_url, world.stack.token(ids["tenant_a"], sub="alice", roles="user",
                                                                app="app2"))
    for alice, field, theirs in ((world.user("tenant_b", "alice"), "tenant_id", ids["tenant_a"]),
                                 (other_app, "app_id", ids["app_a"])):
        assert alice.get("/tracks", params={"referrer": "alice", field: theirs}).status_code == 403
        assert alice.post("/v1/redeem", {field: theirs, "code": ids["code"], "user_id": "alice"}).status_code == 403


# --- 4. page tokens -----------------------------------------------------------------------------------------

# (A's paginated query, the same route for B: its own parent where the route checks the parent first)
PAGED = [
    (Call("GET", "/tracks?referrer=alice"), None),
    (Call("GET", "/v1/rewards"), None),
    (Call("GET", "/v1/inventory/reservations?reward_id={reward}"), None),
    (Call("GET", "/v1/reward-grants"), None),
    (Call("GET", "/v1/redeem-codes?batch_id={batch}"), Call("GET", "/v1/redeem-codes?batch_id={b_batch}")),
    (Call("GET", "/v1/campaigns"), None),
    (Call("GET", "/v1/campaigns/{campaign}/tasks"), Call("GET", "/v1/campaigns/{b_campaign}/tasks")),
    (Call("GET", "/v1/audiences"), None),
    (Call("GET", "/v1/tasks"), None),
    (Call("GET", "/v1/task-completion-logs?task_id={task}"), None),
    (Call("GET", "/v1/task-completion-logs?user_id=u1"), None),
    (Call("GET", "/v1/affiliates/p-root/downline"), None),
    (Call("GET", "/v1/affiliates/v/commissions"), None),
    (Call("GET", "/v1/affiliates/v/commissions?status=pending"), None),
    (Call("GET", "/v1/stats/activity/{topic}/records?day={today}"), None),
]


def first_page_token(world: World, call: Call) -> str:
    page = ok(call.send(world.a, world.ids, params={"limit": 1}))
    assert len(page["items"]) == 1 and page["next_token"], page
    return page["next_token"]


def assert_bad_token(answer: requests.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"] == [{"field": "next_token"}]


@pytest.mark.parametrize(("call", "b_call"), PAGED, ids=[str(p[0]) for p in PAGED])
def test_a_page_token_of_a_is_400_for_another_tenant_or_app(world, intruder, call, b_call):
    token = first_page_token(world, call)
    second = ok(call.send(world.a, world.ids, params={"limit": 1, "next_token": token}))
    assert len(second["items"]) == 1  # the token works for A
    answer = (b_call or call).send(intruder.api, intruder.ids, params={"limit": 1, "next_token": token})
    assert_bad_token(answer)
    assert not world.leaks(answer)


# (A's query that hands out the token, another query of A on the same partition that must refuse it)
OTHER_QUERY = [
    (Call("GET", "/tracks?referrer=alice&track_type=1"), Call("GET", "/tracks?referrer=alice&track_type=2")),
    (Call("GET", "/v1/affiliates/p-root/downline?level=1"), Call("GET", "/v1/affiliates/p-root/downline?level=2")),
    (Call("GET", "/v1/affiliates/v/commissions?status=pending"), Call("GET", "/v1/affiliates/v/commissions")),
    (Call("GET", "/v1/affiliates/v/commissions"), Call("GET", "/v1/affiliates/v/commissions?status=pending")),
    (Call("GET", "/v1/affiliates/q/commissions"), Call("GET", "/v1/affiliates/q/downline")),
]


@pytest.mark.parametrize(("call", "other"), OTHER_QUERY, ids=[f"{p[0]} -> {p[1]}" for p in OTHER_QUERY])
def test_a_page_token_is_400_for_another_query(world, call, other):
    token = first_page_token(world, call)
    assert_bad_token(other.send(world.a, world.ids, params={"limit": 1, "next_token": token}))


def crafted(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


# Tokens an intruder could forge for its own partitions: a key without its sort attribute, or with extra
# attributes, and one of A's partitions, which it knows the shape of.
FORGED = [
    (Call("GET", "/v1/campaigns"), {"pk": "T#{own}#CAMPAIGNS"}),
    (Call("GET", "/v1/rewards"), {"gsi1pk": "T#{own}#REWARDS"}),
    (Call("GET", "/v1/rewards"), {"gsi1pk": "T#{own}#REWARDS", "gsi1sk": "x"}),
    (Call("GET", "/v1/campaigns"), {"pk": "T#{own}#CAMPAIGNS", "sk": "CAMPAIGN#x", "gsi1pk": "x", "gsi1sk": "x"}),
    (Call("GET", "/v1/campaigns"), {"pk": "T#{tenant_a}#A#app1#CAMPAIGNS", "sk": "CAMPAIGN#{campaign}"}),
]


@pytest.mark.parametrize(("call", "key"), FORGED, ids=[f"{p[0]} {sorted(p[1])}" for p in FORGED])
def test_a_forged_page_token_is_400(world, intruder, call, key):
    ids = {**intruder.ids, "own": f"{intruder.tenant}#A#{intruder.app}"}
    assert_bad_token(call.send(intruder.api, ids, params={"next_token": crafted(fill(key, ids))}))


# --- 5. a user acts only on their own user id ----------------------------------------------------------------

OTHER_USER = [
    Call("GET", "/tracks/bob/2"),
    Call("POST", "/tracks", {"user_id": "bob", "track_type": 1, "referrer": "carol"}),
    Call("GET", "/tracks?referrer=bob"),
    Call("GET", "/tracks/summary?referrer=bob"),
    Call("GET", "/v1/inventory/reservations?reward_id={reward}&user_id=bob"),
    Call("GET", "/v1/inventory/reservations?reward_id={reward}"),
    Call("GET", "/v1/reward-grants?user_id=bob"),
    Call("GET", "/v1/reward-grants"),
    Call("POST", "/v1/redeem", {"code": "{code}", "user_id": "bob"}),
    Call("GET", "/v1/task-completion-logs?user_id=u1"),
    Call("GET", "/v1/task-completion-logs?task_id={task}"),
    Call("GET", "/v1/users/u1/tasks"),
    Call("POST", "/v1/affiliates", {"user_id": "bob"}),
    Call("GET", "/v1/affiliates/v"),
    Call("GET", "/v1/affiliates/p-root/downline"),
    Call("GET", "/v1/affiliates/v/upline"),
    Call("GET", "/v1/affiliates/v/commissions"),
    Call("GET", "/v1/affiliates/v/earnings"),
]


@pytest.mark.parametrize("call", OTHER_USER, ids=str)
def test_a_user_acting_on_another_user_of_the_tenant_is_403(world, call):
    answer = call.send(world.user("tenant_a", "alice"), world.ids)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "FORBIDDEN"


def test_a_user_acts_on_themselves(world):
    bob, v = world.user("tenant_a", "bob"), world.user("tenant_a", "v")
    assert ok(bob.get("/v1/reward-grants", params={"user_id": "bob"}))["items"]
    assert ok(bob.get(f"/v1/reward-grants/{world.ids['grant']}"))["user_id"] == "bob"
    assert ok(v.get("/v1/affiliates/v/earnings"))["pending"] > 0
    assert ok(world.user("tenant_a", "u1").get("/v1/task-completion-logs", params={"user_id": "u1"}))["items"]
    # Another user's grant, read by id, is not found: its existence is not told
    assert world.user("tenant_a", "alice").get(f"/v1/reward-grants/{world.ids['grant']}").status_code == 404


def test_a_users_events_count_only_as_themselves(world):
    alice = world.user("tenant_a", "alice")
    answer = ok(alice.post("/v1/events", {"events": visits(f"as-bob-{uuid.uuid4().hex[:6]}", "x", 1)}), 202)
    assert answer["accepted"] == 0
    assert [e["field"] for e in answer["results"][0]["errors"]] == ["events.0.wu_id"]


# --- 6. no 5xx anywhere --------------------------------------------------------------------------------------

def test_no_answer_of_this_module_was_a_server_error(world):
    assert ANSWERS
    assert [answer for answer in ANSWERS if answer[2] >= 500] == []
