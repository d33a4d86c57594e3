"""CPS over HTTP against the local stack: the article's example, repeated and out-of-order deliveries,
webhook plus pull, refunds, signatures, and concurrency (one tenant per test)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from marketing.cps.signing import signed_headers

LONG_AGO = "2020-01-01T00:00:00Z"


def order(pid, status="PAID", order_id="o-1", **more):
    return {"order_id": order_id, "status": status, "pid": pid, "pay_price": 5000, "commission": 1000,
            "refund_price": 0, "title": "Lunch set", "paid_at": "2026-11-23T12:00:00Z", **more}


def send(local_stack, tenant, body, *, app="app1", platform="fake", headers=None):
    raw = json.dumps(body).encode()
    headers = signed_headers(tenant, app, platform, raw) if headers is None else headers
    return requests.post(f"{local_stack.api_url}/v1/cps/{tenant}/{app}/{platform}/orders", data=raw, timeout=60,
                         headers={"Content-Type": "application/json", **headers})


def make_chain(api, users="ABC"):
    """users[0] registers alone, each next one with the previous one's invite code. Answers the last pid."""
    code = None
    for user in users:
        answer = api.post("/v1/affiliates", {"user_id": user, **({"invite_code": code} if code else {})})
        assert answer.status_code == 201, answer.text
        code = answer.json()["invite_code"]
    return answer.json()["pid"]


def balances(api, users="ABC"):
    return {u: {k: v for k, v in api.get(f"/v1/affiliates/{u}/earnings").json().items() if k != "user_id"}
            for u in users}


def entry_count(api, users="ABC"):
    return sum(len(api.get(f"/v1/affiliates/{u}/commissions", params={"limit": 100}).json()["items"]) for u in users)


def pull(local_stack, tenant, orders):
    source = {"tenant_id": tenant, "app_id": "app1", "platform": "fake", "adapter": "fake", "orders": orders}
    answer = requests.post(f"{local_stack.api_url}/_local/invoke/CpsPullFunction", json=source, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_articles_example(local_stack, tenant):
    # Given A invites B and B invites C
    api = local_stack.api(tenant)
    pid = make_chain(api)
    assert [r["user_id"] for r in api.get("/v1/affiliates/C/upline").json()["items"]] == ["B", "A"]
    assert [r["user_id"] for r in api.get("/v1/affiliates/A/downline", params={"level": 2}).json()["items"]] == ["C"]
    c = local_stack.api(tenant, sub="C", roles="user").get("/v1/affiliates/C").json()
    assert c["pid"] == pid and c["inviter_id"] == "B" and "<svg" in c["qrcode_svg"]

    # When an order through C's pid pays 1,000 cents of platform commission
    answer = send(local_stack, tenant, order(pid))

    # Then C earns 600, B 200 and A 100, pending
    assert answer.status_code == 200 and answer.json()["entries"] == 3
    assert {u: b["pending"] for u, b in balances(api).items()} == {"A": 100, "B": 200, "C": 600}
    mine = local_stack.api(tenant, sub="A", roles="user").get("/v1/affiliates/A/commissions").json()["items"]
    assert [(e["level"], e["order_user_id"], e["amount"], e["status"]) for e in mine] == [(2, "C", 100, "pending")]


def test_five_webhooks_and_a_pull_of_one_order_make_one_set_of_entries(local_stack, tenant):
    api = local_stack.api(tenant)
    pid = make_chain(api)
    answers = [send(local_stack, tenant, order(pid)) for _ in range(5)]
    assert [a.json()["entries"] for a in answers] == [3, 0, 0, 0, 0]
    pulled = pull(local_stack, tenant, [order(pid)])
    assert pulled["results"][0]["pulled"] == 1
    assert entry_count(api) == 3
    recon = api.get("/v1/cps/reconciliation", params={"date": "2026-11-23", "platform": "fake"}).json()
    assert (recon["both"], recon["webhook_only"], recon["pull_only"]) == (1, [], [])


def test_a_refund_after_settlement_reverses_and_balances_add_up(local_stack, tenant):
    api = local_stack.api(tenant)
    pid = make_chain(api)
    send(local_stack, tenant, order(pid))
    pull(local_stack, tenant, [order(pid, "SETTLED", settled_at=LONG_AGO)])
    assert balances(api)["C"] == {"pending": 0, "available": 600, "reversed": 0, "withheld": 0, "by_level": {"0": 600}}
    send(local_stack, tenant, order(pid, "PARTIALLY_REFUNDED", refund_price=2500, settled_at=LONG_AGO))
    half = balances(api)
    assert {u: (b["available"], b["reversed"]) for u, b in half.items()} == {
        "A": (50, 50), "B": (100, 100), "C": (300, 300)}
    send(local_stack, tenant, order(pid, "REFUNDED", refund_price=5000))
    for user, share in (("A", 100), ("B", 200), ("C", 600)):
        b = balances(api)[user]
        assert (b["pending"], b["available"], b["reversed"]) == (0, 0, share)
    assert entry_count(api) == 12  # accrual, settlement and two reversals per distributor


def test_refunded_before_paid_ends_as_in_order(local_stack, tenant):
    in_order, out_of_order = local_stack.api(tenant), local_stack.api(tenant + "-b")
    pid_in, pid_out = make_chain(in_order), make_chain(out_of_order)
    send(local_stack, tenant, order(pid_in))
    send(local_stack, tenant, order(pid_in, "REFUNDED", refund_price=5000))
    send(local_stack, tenant + "-b", order(pid_out, "REFUNDED", refund_price=5000))
    send(local_stack, tenant + "-b", order(pid_out))
    assert balances(in_order) == balances(out_of_order)
    assert entry_count(in_order) == entry_count(out_of_order) == 6
    assert out_of_order.get("/v1/cps/orders/fake/o-1").json()["status"] == "REFUNDED"


def test_unsigned_wrong_and_stale_webhooks_are_refused_and_store_nothing(local_stack, tenant):
    api = local_stack.api(tenant)
    pid = make_chain(api)
    raw = json.dumps(order(pid)).encode()
    now = int(time.time())
    refused = [
        {},
        {"X-Timestamp": str(now), "X-Signature": "f" * 64},
        signed_headers(tenant, "app1", "fake", raw, timestamp=now - 600),
        signed_headers(tenant + "-other", "app1", "fake", raw),  # another tenant's key
        signed_headers(tenant, "app2", "fake", raw),  # another app's key
        signed_headers(tenant, "app1", "meituan", raw),  # another platform's key (the same secret locally)
        {"Authorization": f"Bearer {api.token}"},  # a user's JWT is no platform signature
    ]
    for headers in refused:
        assert send(local_stack, tenant, order(pid), headers=headers).status_code == 401, headers
    assert api.get("/v1/cps/orders/fake/o-1").status_code == 404
    assert entry_count(api) == 0


def test_twenty_simultaneous_deliveries_of_one_order_make_one_set_of_entries(local_stack, tenant):
    api = local_stack.api(tenant)
    pid = make_chain(api)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: send(local_stack, tenant, order(pid)), range(20)))
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json()["entries"] for a in answers) == 3
    assert entry_count(api) == 3
    assert {u: b["pending"] for u, b in balances(api).items()} == {"A": 100, "B": 200, "C": 600}


def test_simultaneous_updates_in_any_order_end_fully_refunded(local_stack, tenant):
    api = local_stack.api(tenant)
    pid = make_chain(api)
    updates = [order(pid), order(pid, "SETTLED", settled_at=LONG_AGO),
               order(pid, "PARTIALLY_REFUNDED", refund_price=1000), order(pid, "REFUNDED", refund_price=5000)] * 5
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda body: send(local_stack, tenant, body), updates))
    assert {a.status_code for a in answers} == {200}
    for user, share in (("A", 100), ("B", 200), ("C", 600)):
        b = balances(api)[user]
        assert (b["pending"], b["available"], b["reversed"]) == (0, 0, share)


def test_simultaneous_registrations_keep_one_inviter_and_no_cycle(local_stack, tenant):
    api = local_stack.api(tenant)
    codes = []
    for i in range(10):
        codes.append(api.post("/v1/affiliates", {"user_id": f"inviter-{i}"}).json()["invite_code"])
    # Twenty registrations of one new user under ten different inviters: one inviter wins
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda i: api.post("/v1/affiliates", {"user_id": "newbie",
                                                                      "invite_code": codes[i % 10]}), range(20)))
    assert [a.status_code for a in answers].count(201) == 1
    assert {a.status_code for a in answers} <= {200, 201, 409}
    winner = api.get("/v1/affiliates/newbie").json()["inviter_id"]
    downlines = {i: api.get(f"/v1/affiliates/inviter-{i}/downline").json()["items"] for i in range(10)}
    assert [i for i, d in downlines.items() if d] == [int(winner.rsplit("-", 1)[1])]

    # An affiliate p and a newcomer q inviting each other at once: q joins under p, p's inviter never changes,
    # so the two never form a cycle
    for pair in range(5):
        p, q = f"p{pair}", f"q{pair}"
        p_code = api.post("/v1/affiliates", {"user_id": p}).json()["invite_code"]
        q_code = api.get(f"/tracks/{q}/2").json()["promcode"]  # q's invite code, before q registers
        with ThreadPoolExecutor(2) as pool:
            joined, looped = pool.map(lambda who: api.post("/v1/affiliates", {"user_id": who[0],
                                                                              "invite_code": who[1]}),
                                      [(q, p_code), (p, q_code)])
        assert joined.status_code == 201 and joined.json()["inviter_id"] == p
        assert looped.status_code == 409 and looped.json()["error"]["code"] in ("CYCLE", "INVITER_FIXED")
        assert api.get(f"/v1/affiliates/{p}").json()["inviter_id"] is None


def commissions_of(api, user):
    return api.get(f"/v1/affiliates/{user}/commissions", params={"limit": 100}).json()["items"]


def test_a_frozen_affiliates_order_is_withheld_and_its_upline_paid(local_stack, tenant):
    # Given C frozen by the operator
    api = local_stack.api(tenant)
    pid = make_chain(api)
    frozen = api.put("/v1/affiliates/C/status", {"status": "FROZEN", "reason": "click fraud"})
    assert frozen.status_code == 200 and frozen.json()["status"] == "FROZEN"
    # When an order of C's pid arrives three times
    answers = [send(local_stack, tenant, order(pid)) for _ in range(3)]
    assert [a.json()["entries"] for a in answers] == [3, 0, 0]
    # Then C's share is in its ledger as withheld, and B and A earn their levels
    assert [(e["kind"], e["status"], e["amount"]) for e in commissions_of(api, "C")] == [
        ("withheld", "withheld", 600)]
    assert balances(api) == {
        "A": {"pending": 100, "available": 0, "reversed": 0, "withheld": 0, "by_level": {"2": 100}},
        "B": {"pending": 200, "available": 0, "reversed": 0, "withheld": 0, "by_level": {"1": 200}},
        "C": {"pending": 0, "available": 0, "reversed": 0, "withheld": 600, "by_level": {}}}
    state = api.get("/v1/cps/orders/fake/o-1").json()
    assert state["withheld"] == [{"level": 0, "user_id": "C", "amount": 600}]
    # And C invites nobody while frozen
    code = api.get("/v1/affiliates/C").json()["invite_code"]
    refused = api.post("/v1/affiliates", {"user_id": "D", "invite_code": code})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "INVITER_FROZEN"


def test_a_freeze_racing_orders_leaves_every_order_with_c_paid_or_withheld_once(local_stack, tenant):
    # Given C with orders arriving while the operator freezes it
    api, admin = local_stack.api(tenant), local_stack.api(tenant)
    pid = make_chain(api)
    bodies = [order(pid, order_id=f"o-{i}") for i in range(12)] * 2  # each order delivered twice

    def deliver_or_freeze(n):
        if n == 5:
            return admin.put("/v1/affiliates/C/status", {"status": "FROZEN", "reason": "race"})
        return send(local_stack, tenant, bodies[n if n < 5 else n - 1])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver_or_freeze, range(len(bodies) + 1)))
    assert {a.status_code for a in answers} == {200}
    # Then every order has exactly one entry for C (accrual if paid before the freeze, withheld after),
    # and B and A are paid on all twelve
    by_order = {}
    for e in commissions_of(api, "C"):
        by_order.setdefault(e["order_id"], []).append(e["kind"])
    assert sorted(by_order) == sorted(f"o-{i}" for i in range(12))
    assert all(len(kinds) == 1 and kinds[0] in ("accrual", "withheld") for kinds in by_order.values())
    c = balances(api)["C"]
    assert c["pending"] + c["withheld"] == 12 * 600
    assert {u: b["pending"] for u, b in balances(api, "AB").items()} == {"A": 1200, "B": 2400}
    # And once frozen, the operator takes back what C has pending, once
    reversal = api.post("/v1/affiliates/C/pending-reversals", {"reason": "race"})
    assert reversal.status_code == 200 and reversal.json()["amount"] == c["pending"]
    assert api.post("/v1/affiliates/C/pending-reversals", {"reason": "race"}).json()["amount"] == 0
    assert balances(api)["C"]["pending"] == 0


def test_affiliates_register_with_integer_user_ids(local_stack, tenant):
    api = local_stack.api(tenant)
    answer = api.post("/v1/affiliates", {"user_id": 10086})
    assert answer.status_code == 201 and answer.json()["user_id"] == "10086"
    assert api.post("/v1/affiliates", {"user_id": "10086"}).status_code == 200  # the same user
