"""The local stack runs each concurrent invocation in a container of its own (a process that shares nothing),
as Lambda does: whatever one request leaves in a module or on a class (Powertools keeps the event being
resolved on its resolver's class), no other request sees it. Every concurrency test over HTTP trusts this."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

THREADS = 100


def race(calls: list) -> list:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_every_answer_of_150_concurrent_requests_belongs_to_its_own_request(local_stack, tenant):
    # Given 2 tenants of 8 users each, every user with a promo code of their own
    tenants = [tenant, f"{tenant}-b"]
    users = {t: [f"user-{n}" for n in range(8)] for t in tenants}
    apis = {(t, u): local_stack.api(t, sub=u, roles="user") for t in tenants for u in users[t]}
    admins = {t: local_stack.api(t) for t in tenants}
    promos = {(t, u): apis[t, u].get(f"/tracks/{u}/1").json()["promcode"] for t in tenants for u in users[t]}

    # When they all send, at once, requests that name the caller, another user or a body of their own, some
    # of which a user may not make
    rng = random.Random(7)
    requests_, expected = [], []
    for n in range(150):
        t = rng.choice(tenants)
        user, other = rng.sample(users[t], 2)
        kind = n % 5
        note = f"{n}-" + "x" * rng.randrange(1_000, 500_000)  # large bodies widen the window of any race
        if kind == 0:  # my own promo code
            requests_.append(lambda a=apis[t, user], u=user: a.get(f"/tracks/{u}/1"))
            expected.append((200, {"user_id": user, "promcode": promos[t, user]}))
        elif kind == 1:  # someone else's: refused
            requests_.append(lambda a=apis[t, user], o=other: a.get(f"/tracks/{o}/1"))
            expected.append((403, None))
        elif kind == 2:  # my own arrival, through another user
            body = {"user_id": user, "track_type": 1, "referrer": other, "note": note}
            requests_.append(lambda a=apis[t, user], b=body: a.post("/tracks", b))
            expected.append((201, {"user_id": user, "referrer": other}))
        elif kind == 3:  # an arrival for someone else: refused
            body = {"user_id": other, "track_type": 1, "referrer": user, "note": note}
            requests_.append(lambda a=apis[t, user], b=body: a.post("/tracks", b))
            expected.append((403, None))
        else:  # the tenant's admin reads the user's code
            requests_.append(lambda a=admins[t], u=user: a.get(f"/tracks/{u}/1"))
            expected.append((200, {"user_id": user, "promcode": promos[t, user]}))
    answers = race(requests_)

    # Then every answer is the one its own request deserves: nobody acted as someone else
    for answer, (status, fields) in zip(answers, expected, strict=True):
        assert answer.status_code == status, answer.text[:300]
        if fields:
            assert {k: answer.json()[k] for k in fields} == fields
        else:
            assert answer.json()["error"]["code"] == "FORBIDDEN"


def test_a_users_large_stock_change_raced_against_the_admins_is_always_refused(local_stack, tenant):
    # Issue #10: a user's slow request (a 1 MB body) ran with the admin's identity and moved the stock.
    admin, user = local_stack.api(tenant), local_stack.api(tenant, sub="mallory", roles="user")
    reward = admin.post("/v1/rewards", {"name": "Gift", "reward_type": "COUPON", "total_stock": 100,
                                        "content": {"discount_type": "AMOUNT", "discount_value": 100}}).json()
    path = f"/v1/rewards/{reward['reward_id']}/stock"
    padding = "x" * 1_000_000

    # When 80 user requests with 1 MB bodies race 80 stock changes by the admin
    admin_deltas = [1, 2, -1, 1] * 20
    calls = [("user", lambda: user.post(path, {"delta": 5, "padding": padding})) for _ in range(80)]
    calls += [("admin", lambda d=d: admin.post(path, {"delta": d})) for d in admin_deltas]
    random.Random(10).shuffle(calls)
    answers = race([call for _, call in calls])

    # Then every user request was refused, every admin change made, and only the admin's moved the stock
    statuses = {(who, answer.status_code) for (who, _), answer in zip(calls, answers, strict=True)}
    assert statuses == {("user", 403), ("admin", 200)}
    stock = admin.get(f"/v1/rewards/{reward['reward_id']}").json()["stock"]
    assert (stock["total"], stock["available"]) == (100 + sum(admin_deltas),) * 2
