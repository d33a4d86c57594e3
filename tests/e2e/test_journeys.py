"""The seed's user stories end to end over HTTP against the local stack, each across capabilities, asserting
the state at every step (issue 12): an invite rewarded with a code its user sees, checks and redeems; a CPS
chain paid and partly refunded; an operator's large batch exported and redeemed; a flash sale's stock through
confirmations, cancellations and expiries; the statistics of the seed's families, a delayed one included."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime

import requests

from marketing.rewards import codes
from tests.e2e.seeding import CAMPAIGN, new_campaign, ok
from tests.e2e.test_cps_e2e import balances, make_chain, order, send
from tests.e2e.test_stats_e2e import totals, wait_for
from tests.handlers.test_stats import EVERY_FAMILY, EXPECTED_ACTIVITY, full

INVITE_COUPON = {"name": "10% off", "reward_type": "COUPON", "total_stock": 10, "per_user_limit": 1,
                 "valid_days": 30, "generator": {"type": "redeem_code", "length": 10, "prefix": "INV"},
                 "content": {"discount_type": "PERCENT", "discount_value": 10, "min_order_cents": 2000}}


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_invite_a_code_in_the_wallet_checked_redeemed_and_counted(local_stack, tenant):
    ops = local_stack.api(tenant)
    backend = local_stack.api(tenant, sub="backend", roles="service")
    alice = local_stack.api(tenant, sub="alice", roles="user")
    # Given a 10% coupon (orders of 20.00 and up) granted as a code by an invite task of a campaign
    reward = ok(ops.post("/v1/rewards", INVITE_COUPON), 201)
    campaign = ok(ops.post("/v1/campaigns", CAMPAIGN), 201)["campaign_id"]
    task = ok(ops.post("/v1/tasks", {"name": "Invite 1", "task_type": "INVITE", "event_type": "track.new_user",
                                     "condition": {"type": "count", "operator": ">=", "value": 1},
                                     "period": "ONCE", "reward_id": reward["reward_id"]}), 201)["task_id"]
    ok(ops.post(f"/v1/campaigns/{campaign}/tasks", {"task_id": task}), 201)
    # And alice's promo code
    promcode = ok(alice.get("/tracks/alice/2"))["promcode"]

    # When bob arrives through it
    arrived = ok(backend.post("/tracks", {"user_id": "bob", "track_type": 2, "promcode": promcode}), 201)
    assert arrived["referrer"] == "alice"

    # Then alice's invite task completes and her wallet holds the code in full, valid 30 days
    wallet = wait_for(lambda: [i for i in ok(alice.get("/v1/users/alice/rewards"))["items"]
                               if i["status"] == "DISTRIBUTED"])
    [item] = wallet
    code = item["code"]
    assert codes.is_well_formed(code) and code.startswith("INV-")
    assert (item["reward_name"], item["source"], item["task_id"], item["campaign_id"]) == \
        ("10% off", "task", task, campaign)
    assert item["issued"] == {"discount_type": "PERCENT", "discount_value": 10, "min_order_cents": 2000}
    assert item["valid_until"] > item["valid_from"]
    assert ok(ops.get("/v1/users/alice/rewards"))["items"][0]["code"] == codes.mask(code)  # staff: masked
    assert ok(alice.get("/v1/users/alice/tasks"))["items"][0]["completed"] is True

    # When she checks it against a 30.00 order, then it is valid for 3.00 off, and nothing is consumed
    check = ok(alice.post("/v1/redeem/validate", {"code": code, "user_id": "alice",
                                                  "order": {"amount_cents": 3000, "currency": "EUR"}}))
    assert (check["valid"], check["discount_cents"], check["reward"]["reward_id"]) == \
        (True, 300, reward["reward_id"])
    assert ok(ops.get(f"/v1/redeem-codes/{code}"))["status"] == "UNUSED"

    # When she redeems it for that order, then her grant is USED with the discount (one use of her limit of 1)
    used = ok(alice.post("/v1/redeem", {"code": code, "user_id": "alice", "order": {"amount_cents": 3000}}))
    assert (used["grant_id"], used["status"], used["discount_cents"]) == (item["grant_id"], "USED", 300)
    assert ok(alice.get("/v1/users/alice/rewards"))["items"][0]["status"] == "USED"
    stock = ok(ops.get(f"/v1/rewards/{reward['reward_id']}"))["stock"]
    assert (stock["available"], stock["issued"]) == (9, 1)

    # And the statistics count bob's visit through alice's share and the redemption with its discount
    assert wait_for(lambda: totals(ops, "referrer/alice")["share_visits"] == 1)
    assert wait_for(lambda: totals(ops, f"campaign/{campaign}")["redemptions"] == 1)
    counted = totals(ops, f"campaign/{campaign}")
    assert (counted["redeemers"], counted["redemption_discount_amount"]) == (1, 300)


def test_cps_chain_paid_then_partly_refunded(local_stack, tenant):
    ops = local_stack.api(tenant)
    # Given A invites B and B invites C through their invite codes
    pid = make_chain(ops)
    assert [r["user_id"] for r in ok(ops.get("/v1/affiliates/C/upline"))["items"]] == ["B", "A"]

    # When a signed PAID webhook for C's pid carries 10.00 of commission
    assert ok(send(local_stack, tenant, order(pid)))["entries"] == 3
    # Then the ledger splits it 60/20/10, pending
    assert {u: b["pending"] for u, b in balances(ops).items()} == {"A": 100, "B": 200, "C": 600}

    # When half the order is refunded, then each share is reversed in proportion
    send(local_stack, tenant, order(pid, "PARTIALLY_REFUNDED", refund_price=2500))
    after = balances(ops)
    assert {u: (b["pending"], b["reversed"]) for u, b in after.items()} == \
        {"A": (50, 50), "B": (100, 100), "C": (300, 300)}
    # And each affiliate's own earnings say the same
    mine = ok(local_stack.api(tenant, sub="C", roles="user").get("/v1/affiliates/C/earnings"))
    assert (mine["pending"], mine["reversed"]) == (300, 300)


def test_operator_codes_generated_exported_twice_and_one_redeemed(local_stack, tenant):
    ops = local_stack.api(tenant)
    reward = ok(ops.post("/v1/rewards", {"name": "Gift", "reward_type": "REDEEM_CODE", "total_stock": None,
                                         "content": {"description": "a gift"}}), 201)
    campaign = new_campaign(ops)
    # When an operator asks for 5,000 codes, then they are generated in the background until DONE
    batch = ok(ops.post(f"/v1/campaigns/{campaign}/redeem-codes", {"reward_id": reward["reward_id"],
                                                                   "count": 5000}), 202)
    assert batch["status"] == "GENERATING"
    done = wait_for(lambda: (lambda b: b if b["status"] == "DONE" else None)(
        ok(ops.get(f"/v1/redeem-code-batches/{batch['batch_id']}"))), timeout=240)
    assert done and (done["generated"], done["total"]) == (5000, 5000)

    # When it is exported twice, then the two files are disjoint and together hold every code
    files = []
    for count in (2000, 3000):
        export = ok(ops.post(f"/v1/redeem-code-batches/{batch['batch_id']}/export", {"count": count}), 201)
        files.append([row["code"] for row in csv.DictReader(io.StringIO(requests.get(export["url"], timeout=60).text))])
    assert [len(f) for f in files] == [2000, 3000] and not set(files[0]) & set(files[1])
    assert ok(ops.get(f"/v1/redeem-code-batches/{batch['batch_id']}"))["exported"] == 5000

    # When a user redeems one exported code, then the listing shows it used by them, masked
    code = files[0][3]  # listings go in code order, and a status filter narrows each page
    user = local_stack.api(tenant, sub="dora", roles="user")
    assert ok(user.post("/v1/redeem", {"code": code, "user_id": "dora"}))["status"] == "DISTRIBUTED"
    listed = ok(ops.get("/v1/redeem-codes", params={"batch_id": batch["batch_id"], "status": "USED"}))["items"]
    assert [(c["masked_code"], c["used_by"]) for c in listed] == [(codes.mask(code), "dora")]
    assert code not in str(listed)
    assert ok(user.get("/v1/users/dora/rewards"))["items"][0]["code"] == code


def test_flash_sale_stock_accounts_exactly(local_stack, tenant):
    ops = local_stack.api(tenant)
    backend = local_stack.api(tenant, sub="backend", roles="service")
    reward = ok(ops.post("/v1/rewards", {"name": "Flash", "reward_type": "COUPON", "total_stock": 10, "shards": 2,
                                         "content": {"discount_type": "AMOUNT", "discount_value": 1000}}), 201)
    # When nine buyers reserve for a minute
    held = [ok(backend.post("/v1/inventory/reserve", {"reward_id": reward["reward_id"], "user_id": f"b{n}",
                                                       "expire_minutes": 1}), 201)["reservation_id"]
            for n in range(9)]
    stock = ok(ops.get(f"/v1/rewards/{reward['reward_id']}"))["stock"]
    assert (stock["available"], stock["reserved"], stock["issued"]) == (1, 9, 0)
    # And four pay (confirm), three give up (cancel), two let the minute pass
    for reservation in held[:4]:
        assert ok(backend.post(f"/v1/inventory/{reservation}/confirm"))["status"] == "CONFIRMED"
    for reservation in held[4:7]:
        assert ok(backend.post(f"/v1/inventory/{reservation}/cancel"))["status"] == "CANCELLED"
    stock = ok(ops.get(f"/v1/rewards/{reward['reward_id']}"))["stock"]
    assert (stock["available"], stock["reserved"], stock["issued"]) == (4, 2, 4)
    time.sleep(61)
    # (the stack's own every-minute schedule may sweep first: this invocation makes sure, whichever does it)
    ok(local_stack.anonymous().post("/_local/invoke/ReservationSweeperFunction", {}))
    # Then the sweeper expired the two, and the stock accounts for every unit
    listed = ok(ops.get("/v1/inventory/reservations", params={"reward_id": reward["reward_id"], "limit": 100}))
    assert sorted(r["status"] for r in listed["items"]) == ["CANCELLED"] * 3 + ["CONFIRMED"] * 4 + ["EXPIRED"] * 2
    stock = ok(ops.get(f"/v1/rewards/{reward['reward_id']}"))["stock"]
    assert stock == {"total": 10, "available": 6, "reserved": 0, "issued": 4}
    # And a late confirmation of an expired one is refused
    late = backend.post(f"/v1/inventory/{held[8]}/confirm")
    assert (late.status_code, late.json()["error"]["code"]) == (409, "RESERVATION_CLOSED")


def test_statistics_of_the_seed_families_with_a_delayed_event(local_stack, tenant):
    backend = local_stack.api(tenant, sub="backend", roles="service")
    ops = local_stack.api(tenant)
    # When a back end posts every family of the seed, and one more visit to be delivered in 3 seconds
    at = time.time() + 3
    deliver_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    late = {**EVERY_FAMILY[0], "event_id": "late-visit", "wu_id": "u-late", "session_str": "s-late",
            "deliver_at": deliver_at}
    answer = ok(backend.post("/v1/events", {"events": [*EVERY_FAMILY, late]}), 202)
    assert answer["accepted"] == len(EVERY_FAMILY) + 1 and answer["results"][-1]["delivery"] == "delayed"

    # Then the day's totals are the seed's (the delayed visit not among them while its time has not come), then
    # the delayed visit adds itself, not before its time
    expected = full(EXPECTED_ACTIVITY)
    later = {**expected, "visits": expected["visits"] + 1, "visitors": expected["visitors"] + 1}
    seen = wait_for(lambda: (lambda now: now if now in (expected, later) else None)(totals(ops, "activity/42")),
                    timeout=60)
    assert seen == expected or time.time() >= at - 1
    assert wait_for(lambda: totals(ops, "activity/42") == later, timeout=60)
    assert time.time() >= at - 1  # SQS delays in whole seconds
    series = ok(ops.get("/v1/stats/activity/42", params={"from": today()}))["days"]
    assert [(d["date"], d["metrics"]["visits"]) for d in series] == [(today(), later["visits"])]

    # And the chart draws the day
    chart = ops.get("/v1/stats/activity/42/chart.svg", params={"metric": "visits"})
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert f"<title>{today()}: {later['visits']}</title>" in chart.text
