"""A tenant with a little of everything, built over HTTP for the tests that need real ids: the authorization
matrix (its requests target them) and the fuzzer (its path parameters draw from them).

`seed_tenant` answers the ids by the name of the path or query parameter that takes them (`reward_id`,
`promcode`, ...), each with the values created, so a caller fills a route's parameters by name."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from marketing.cps.signing import signed_headers
from tests.e2e.conftest import Api

COUPON = {"name": "5 off", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500}}
CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2099-01-01T00:00:00Z", "status": "ACTIVE"}
CPS_SETTINGS = {"levels": 2, "rates_bp": [5000, 3000, 1000], "hold_days": 3}
ORDER_DAY = "2026-11-20"
PLATFORM = "fake"
APP = "app1"  # the app every seeded resource belongs to
TOPIC_TYPE = "activity"


def ok(answer: requests.Response, status: int = 200) -> Any:
    assert answer.status_code == status, f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text}"
    return answer.json() if answer.text else None


def new_campaign(api: Api) -> str:
    """A campaign to generate codes for (generation refuses an unknown campaign)."""
    return ok(api.post("/v1/campaigns", CAMPAIGN), 201)["campaign_id"]


def task_body(name: str, reward_id: str, event_type: str = "USER_REGISTER") -> dict:
    return {"name": name, "task_type": "CUSTOM", "event_type": event_type, "period": "ONCE",
            "condition": {"type": "count", "operator": ">=", "value": 1}, "reward_id": reward_id}


def order_body(order_id: str, pid: str) -> dict:
    return {"order_id": order_id, "status": "PAID", "pid": pid, "pay_price": 5000, "commission": 1000,
            "refund_price": 0, "title": "Lunch set", "paid_at": f"{ORDER_DAY}T12:00:00Z"}


def post_order(api_url: str, tenant: str, order: dict) -> requests.Response:
    raw = json.dumps(order).encode()
    headers = {"Content-Type": "application/json", **signed_headers(tenant, APP, PLATFORM, raw)}
    return requests.post(f"{api_url}/v1/cps/{tenant}/{APP}/{PLATFORM}/orders", data=raw, headers=headers, timeout=30)


def seed_tenant(stack, tenant: str, *, copies: int = 1) -> dict[str, list]:
    """`copies` of each resource in `tenant` (a fuzzer deletes some as it goes), made one request at a time.
    Nothing is left to happen asynchronously but the counting of two visits."""
    admin, service = (Api(stack.api_url, stack.token(tenant, sub=sub, roles=roles))
                      for sub, roles in (("ops", "admin"), ("backend", "service")))
    ids: dict[str, list] = {"tenant_id": [tenant], "app_id": [APP], "platform": [PLATFORM], "topic_type": [TOPIC_TYPE],
                            "track_type": [2, 1], "user_id": ["alice", "bob", "p-root", "q", "v", "u1"],
                            "referrer": ["alice"], "date": [ORDER_DAY], "day": [datetime.now(UTC).date().isoformat()],
                            "metric": ["visits"]}

    def add(name: str, value: str) -> str:
        ids.setdefault(name, []).append(value)
        return value

    # tracking: alice's new-user code, bob arrived through it; a configured track type
    promcode = add("promcode", ok(admin.get("/tracks/alice/2"))["promcode"])
    ok(service.post("/tracks", {"user_id": "bob", "track_type": 2, "promcode": promcode}), 201)
    ok(admin.put("/track-types/5", {"name": add("track_type_name", f"seeded_{uuid.uuid4().hex[:8]}")}), 201)

    codes_campaign = new_campaign(admin)
    for _ in range(copies):
        # rewards: a reward, a reservation, a batch of codes (one redeemed: a grant)
        reward = add("reward_id", ok(admin.post("/v1/rewards", {**COUPON, "total_stock": 100}), 201)["reward_id"])
        add("reservation_id", ok(service.post("/v1/inventory/reserve", {
            "reward_id": reward, "user_id": "bob", "expire_minutes": 600}), 201)["reservation_id"])
        batch = add("batch_id", ok(admin.post(f"/v1/campaigns/{codes_campaign}/redeem-codes",
                                              {"reward_id": reward, "count": 3}), 201)["batch_id"])
        exported = ok(admin.post(f"/v1/redeem-code-batches/{batch}/export", {"format": "csv"}), 201)
        codes = [row.split(",")[0] for row in requests.get(exported["url"], timeout=30).text.strip().splitlines()[1:]]
        add("grant_id", ok(service.post("/v1/redeem", {"code": codes[0], "user_id": "bob"}))["grant_id"])
        for code in codes[1:]:
            add("code", code)

        # campaigns: an audience, a campaign for it, a task granting the reward, linked
        audience = add("audience_id", ok(admin.post("/v1/audiences", {"name": "vip", "audience_type": "LIST",
                                                                      "user_ids": ["u1", "u2"]}), 201)["audience_id"])
        campaign = add("campaign_id", ok(admin.post("/v1/campaigns", {**CAMPAIGN, "audience_id": audience}),
                                         201)["campaign_id"])
        task = add("task_id", ok(admin.post("/v1/tasks", task_body("register", reward)), 201)["task_id"])
        ok(admin.post(f"/v1/campaigns/{campaign}/tasks", {"task_id": task}), 201)
        # a batch grant of the reward to the audience, waited for: nothing of it happens later
        grant_batch = add("grant_batch_id", ok(admin.post(f"/v1/rewards/{reward}/grant-batches", {
            "audience_id": audience, "reason": "seeded"}), 202)["batch_id"])
        for _ in range(150):
            if ok(admin.get(f"/v1/grant-batches/{grant_batch}"))["status"] == "DONE":
                break
            time.sleep(0.2)

    # CPS: settings, p-root invites q, q invites v; an order through v's pid
    ok(admin.put("/v1/cps/settings", CPS_SETTINGS))
    invite = add("invite_code", ok(admin.post("/v1/affiliates", {"user_id": "p-root"}), 201)["invite_code"])
    invite_q = ok(admin.post("/v1/affiliates", {"user_id": "q", "invite_code": invite}), 201)["invite_code"]
    pid = add("pid", ok(admin.post("/v1/affiliates", {"user_id": "v", "invite_code": invite_q}), 201)["pid"])
    order = add("order_id", f"o-{uuid.uuid4().hex[:12]}")
    ok(post_order(stack.api_url, tenant, order_body(order, pid)))

    # stats: visits of one activity
    topic = add("topic_id", f"act-{uuid.uuid4().hex[:8]}")
    events = [{"event_id": add("event_id", f"ev-{uuid.uuid4().hex[:10]}"), "event_type": "activity.visit",
               "topic_type": TOPIC_TYPE, "topic_id": topic, "wu_id": f"visitor-{n}"} for n in range(2)]
    ok(service.post("/v1/events", {"events": events}), 202)
    return ids
