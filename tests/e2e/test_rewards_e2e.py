"""Rewards and redeem codes over HTTP against the local stack: the invariants under real concurrency
(the embedded AWS makes each request atomic, as DynamoDB does; our requests interleave freely)."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from marketing.rewards import codes
from tests.e2e.seeding import new_campaign

THREADS = 25


def parallel(calls: list) -> list[requests.Response]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda call: call(), calls))


def new_reward(api, **fields) -> dict:
    body = {"name": "Flash gift", "reward_type": "COUPON", "total_stock": 100,
            "content": {"discount_type": "AMOUNT", "discount_value": 990}, **fields}
    answer = api.post("/v1/rewards", body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def codes_of(api, reward_id: str, count: int) -> list[str]:
    """A batch of `count` codes, exported as CSV and read through the pre-signed URL."""
    batch = api.post(f"/v1/campaigns/{new_campaign(api)}/redeem-codes", {"reward_id": reward_id, "count": count}).json()
    exported = api.post(f"/v1/redeem-code-batches/{batch['batch_id']}/export", {"format": "csv"})
    assert exported.status_code == 201, exported.text
    body = requests.get(exported.json()["url"], timeout=30)
    assert body.status_code == 200
    return [line.split(",")[0] for line in body.text.strip().splitlines()[1:]]


def redeem_call(api, code: str, user_id: str):
    return lambda: api.post("/v1/redeem", {"code": code, "user_id": user_id})


def test_one_code_redeemed_by_100_at_once_gives_exactly_one_grant(local_stack, tenant):
    api = local_stack.api(tenant)
    reward = new_reward(api, total_stock=1000)
    (code,) = codes_of(api, reward["reward_id"], 1)
    assert codes.is_well_formed(code)

    answers = parallel([redeem_call(api, code, f"user-{n}") for n in range(100)])

    assert Counter(a.status_code for a in answers) == {200: 1, 409: 99}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"CODE_USED"}
    grants = api.get("/v1/reward-grants", params={"reward_id": reward["reward_id"], "limit": 100}).json()["items"]
    assert len(grants) == 1
    assert api.get(f"/v1/rewards/{reward['reward_id']}").json()["stock"]["issued"] == 1


@pytest.mark.parametrize(("shards", "stock"), [(1, 100), (4, 30)], ids=["one-item", "flash-sale-shards"])
def test_twice_the_stock_in_simultaneous_reservations_gives_exactly_the_stock(local_stack, tenant, shards, stock):
    api = local_stack.api(tenant, roles="service")
    reward = new_reward(local_stack.api(tenant), total_stock=stock, shards=shards)
    body = {"reward_id": reward["reward_id"], "quantity": 1, "expire_minutes": 10}

    answers = parallel([lambda n=n: api.post("/v1/inventory/reserve", {**body, "user_id": f"u{n}"})
                        for n in range(2 * stock)])

    assert Counter(a.status_code for a in answers) == {201: stock, 409: stock}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"OUT_OF_STOCK"}
    left = api.get(f"/v1/rewards/{reward['reward_id']}").json()["stock"]
    assert left == {"total": stock, "available": 0, "reserved": stock, "issued": 0}

    if shards > 1:
        return
    # Cancel and confirm race each other on reservations: each ends one way, and the stock adds up.
    reservations = [a.json()["reservation_id"] for a in answers if a.status_code == 201][:40]
    moves = parallel([lambda r=r, verb=verb: api.post(f"/v1/inventory/{r}/{verb}")
                      for r in reservations for verb in ("confirm", "cancel")])
    assert {m.status_code for m in moves} <= {200, 409}
    listed = api.get("/v1/inventory/reservations", params={"reward_id": reward["reward_id"], "limit": 100}).json()
    ended = Counter(r["status"] for r in listed["items"])
    assert ended["CONFIRMED"] + ended["CANCELLED"] == 40 and ended["PENDING"] == 60
    stock = api.get(f"/v1/rewards/{reward['reward_id']}").json()["stock"]
    assert stock == {"total": 100, "available": ended["CANCELLED"], "reserved": 60, "issued": ended["CONFIRMED"]}


def test_a_per_user_limit_of_one_holds_against_20_simultaneous_codes(local_stack, tenant):
    api = local_stack.api(tenant)
    reward = new_reward(api, total_stock=None, per_user_limit=1)
    batch = codes_of(api, reward["reward_id"], 20)

    answers = parallel([redeem_call(api, code, "greedy") for code in batch])

    assert Counter(a.status_code for a in answers) == {200: 1, 409: 19}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"PER_USER_LIMIT_REACHED"}


def test_rollbacks_racing_redemptions_lose_nothing(local_stack, tenant):
    api = local_stack.api(tenant)
    reward = new_reward(api, total_stock=20, per_user_limit=1)
    first, second = codes_of(api, reward["reward_id"], 20), codes_of(api, reward["reward_id"], 20)
    grants = [a.json()["grant_id"] for a in parallel([redeem_call(api, c, f"u{n}") for n, c in enumerate(first)])]
    assert len(grants) == 20

    # Each user's grant is rolled back twice while the same user redeems a second code, interleaved.
    def rollback(grant_id: str):
        return lambda: api.post(f"/v1/reward-grants/{grant_id}/rollback")

    calls = [call for n, g in enumerate(grants)
             for call in (rollback(g), redeem_call(api, second[n], f"u{n}"), rollback(g))]
    answers = parallel(calls)

    redemptions = answers[1::3]
    rollbacks = [a for n, a in enumerate(answers) if n % 3 != 1]
    assert {a.status_code for a in rollbacks} == {200}
    assert {a.json()["status"] for a in rollbacks} == {"ROLLED_BACK"}
    assert {a.status_code for a in redemptions} <= {200, 409}
    won = sum(a.status_code == 200 for a in redemptions)
    stock = api.get(f"/v1/rewards/{reward['reward_id']}").json()["stock"]
    assert stock == {"total": 20, "available": 20 - won, "reserved": 0, "issued": won}
    listed = api.get("/v1/reward-grants", params={"reward_id": reward["reward_id"], "limit": 100}).json()["items"]
    assert Counter(g["status"] for g in listed) == {"ROLLED_BACK": 20, "DISTRIBUTED": won}

    # What lost only to timing now succeeds: stock and allowances came back exactly once.
    retried = [redeem_call(api, second[n], f"u{n}") for n, a in enumerate(redemptions) if a.status_code == 409]
    assert {a.status_code for a in parallel(retried)} <= {200}
    stock = api.get(f"/v1/rewards/{reward['reward_id']}").json()["stock"]
    assert stock == {"total": 20, "available": 0, "reserved": 0, "issued": 20}
    assert api.post("/v1/redeem", {"code": first[0], "user_id": "u0"}).json()["error"]["code"] == "CODE_USED"


def test_the_sweeper_and_worker_are_wired(local_stack, tenant):
    api = local_stack.api(tenant)
    swept = local_stack.anonymous().post("/_local/invoke/ReservationSweeperFunction", {})
    assert swept.status_code == 200 and "expired" in swept.json()

    reward = new_reward(api)
    batch = api.post(f"/v1/campaigns/{new_campaign(api)}/redeem-codes",
                     {"reward_id": reward["reward_id"], "count": 1001})
    assert batch.status_code == 202 and batch.json()["status"] == "GENERATING"
    deadline = time.monotonic() + 60
    while (state := api.get(f"/v1/redeem-code-batches/{batch.json()['batch_id']}").json())["status"] != "DONE":
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["generated"] == 1001


def test_other_tenants_and_users_are_kept_out(local_stack, tenant):
    api = local_stack.api(tenant)
    reward = new_reward(api)
    (code,) = codes_of(api, reward["reward_id"], 1)
    other = local_stack.api(tenant + "-other")
    assert other.get(f"/v1/rewards/{reward['reward_id']}").status_code == 404
    assert other.post("/v1/redeem", {"code": code, "user_id": "x"}).json()["error"]["code"] == "CODE_NOT_FOUND"
    user = local_stack.api(tenant, sub="alice", roles="user")
    assert user.post("/v1/rewards", {"name": "x"}).status_code in (403, 422)
    assert user.post("/v1/redeem", {"code": code, "user_id": "bob"}).status_code == 403
    assert user.post("/v1/redeem", {"code": code, "user_id": "alice"}).status_code == 200
    assert user.get("/v1/reward-grants", params={"user_id": "alice"}).json()["items"][0]["user_id"] == "alice"
    assert user.get("/v1/reward-grants").status_code == 403
