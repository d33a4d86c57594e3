"""Coupon packs (BUNDLE rewards) through the real handlers on moto: reserving, confirming, cancelling, redeeming,
granting through the pipeline and rolling back move every part's stock together, or none of it."""

from __future__ import annotations

import pytest

from marketing.campaigns import grants
from marketing.core.identity import Caller, Role
from marketing.rewards import api as rewards
from tests.handlers.test_redeem_api import call, export, exported_codes, new_batch, redeem
from tests.support import Function, claims

SERVICE = Caller(sub="backend", tenant_id="t1", app_id="app1", roles=frozenset({Role.SERVICE}))


@pytest.fixture
def apis(stack):
    return Function("RewardsApiFunction", stack), Function("RedeemApiFunction", stack)


def reward(rewards_api, stock: int | None, **fields) -> str:
    body = {"name": "5 off", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500},
            "total_stock": stock, **fields}
    status, made = call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body=body)
    assert status == 201, made
    return made["reward_id"]


def bundle(rewards_api, parts: dict[str, int], stock: int | None = 10, **fields) -> str:
    return reward(rewards_api, stock, name="Welcome pack", reward_type="BUNDLE",
                  content={"items": [{"reward_id": r, "quantity": q} for r, q in parts.items()]}, **fields)


def stock(rewards_api, reward_id: str) -> dict:
    return call(rewards_api, "GET", f"/v1/rewards/{reward_id}", "/v1/rewards/{reward_id}")[1]["stock"]


def reserve(rewards_api, reward_id: str, reservation_id: str, quantity: int = 1) -> tuple[int, dict]:
    body = {"reward_id": reward_id, "user_id": "u1", "quantity": quantity, "reservation_id": reservation_id}
    return call(rewards_api, "POST", "/v1/inventory/reserve", "/v1/inventory/reserve", body=body)


def test_a_bundle_with_one_part_out_of_stock_grants_reserves_and_redeems_nothing(apis, stack):
    rewards_api, redeem_api = apis
    coupon, points, scarce = reward(rewards_api, 10), reward(rewards_api, None), reward(rewards_api, 1)
    pack = bundle(rewards_api, {coupon: 2, points: 1, scarce: 2})  # 2 of `scarce` wanted, 1 held
    before = {r: stock(rewards_api, r) for r in (coupon, points, scarce, pack)}

    # Reserved directly
    status, answer = reserve(rewards_api, pack, "r1")
    assert (status, answer["error"]["code"]) == (409, "OUT_OF_STOCK"), answer
    assert scarce in answer["error"]["message"]

    # Granted through the grant pipeline (as a completed task or a batch grant is)
    pipeline = grants.pipeline_caller("t1", "app1")
    log = {"completion_id": "c1", "reward_id": pack, "user_id": "u1", "task_id": None, "campaign_id": None,
           "completed_at": "2026-11-01T00:00:00Z", "contact": None}
    grant = grants.grant_for(pipeline, log, attempt=1)
    assert (grant["status"], grant["reason"]) == ("FAILED", "out of stock")

    # Redeemed with a code of the pack
    made = new_batch(redeem_api, pack, count=1)
    [code] = exported_codes(stack, export(redeem_api, made["batch_id"])[1])
    status, answer = redeem(redeem_api, code, "u1")
    assert (status, answer["error"]["code"]) == (409, "OUT_OF_STOCK"), answer

    assert {r: stock(rewards_api, r) for r in (coupon, points, scarce, pack)} == before


def test_a_bundle_reserves_confirms_and_rolls_back_every_part(apis, stack):
    rewards_api, _ = apis
    coupon, vip = reward(rewards_api, 10), reward(rewards_api, 5)
    pack = bundle(rewards_api, {coupon: 2, vip: 1})
    status, reservation = reserve(rewards_api, pack, "r1", quantity=2)
    assert status == 201, reservation
    assert sorted((p["reward_id"], p["quantity"]) for p in reservation["parts"]) == sorted([(coupon, 4), (vip, 2)])
    assert stock(rewards_api, coupon) == {"total": 10, "available": 6, "reserved": 4, "issued": 0}
    assert stock(rewards_api, vip) == {"total": 5, "available": 3, "reserved": 2, "issued": 0}

    # A cancelled reservation gives every part back
    assert call(rewards_api, "POST", "/v1/inventory/r1/cancel", "/v1/inventory/{reservation_id}/cancel")[0] == 200
    assert stock(rewards_api, coupon)["available"] == 10 and stock(rewards_api, vip)["available"] == 5

    # Granted through the pipeline's own calls, confirmed, then rolled back: every part returns once
    grant = rewards.create_grant(SERVICE, grant_id="g1", reward_id=pack, user_id="u1", status="PENDING",
                                 reservation_id="g1")
    rewards.reserve(SERVICE, reward_id=pack, user_id="u1", quantity=1, expire_minutes=5, reservation_id="g1")
    rewards.confirm(SERVICE, "g1")
    rewards.transition_grant(SERVICE, grant["grant_id"], to="DISTRIBUTED")
    assert stock(rewards_api, coupon) == {"total": 10, "available": 8, "reserved": 0, "issued": 2}
    assert stock(rewards_api, vip) == {"total": 5, "available": 4, "reserved": 0, "issued": 1}
    assert stock(rewards_api, pack)["issued"] == 1
    for _ in range(2):
        status, rolled = call(rewards_api, "POST", "/v1/reward-grants/g1/rollback",
                              "/v1/reward-grants/{grant_id}/rollback")
        assert (status, rolled["status"]) == (200, "ROLLED_BACK")
    for r, total in ((coupon, 10), (vip, 5), (pack, 10)):
        assert stock(rewards_api, r) == {"total": total, "available": total, "reserved": 0, "issued": 0}


def test_a_redeemed_bundle_code_takes_every_part_and_its_rollback_returns_them(apis, stack):
    rewards_api, redeem_api = apis
    coupon, vip = reward(rewards_api, 3), reward(rewards_api, 3)
    pack = bundle(rewards_api, {coupon: 3, vip: 1})
    made = new_batch(redeem_api, pack, count=2)
    first, second = exported_codes(stack, export(redeem_api, made["batch_id"])[1])
    status, grant = redeem(redeem_api, first, "u1")
    assert status in (200, 201), grant
    assert stock(rewards_api, coupon) == {"total": 3, "available": 0, "reserved": 0, "issued": 3}
    # The second pack finds the coupon gone: nothing of it is taken
    status, refused = redeem(redeem_api, second, "u2")
    assert (status, refused["error"]["code"]) == (409, "OUT_OF_STOCK"), refused
    assert stock(rewards_api, vip) == {"total": 3, "available": 2, "reserved": 0, "issued": 1}
    assert stock(rewards_api, pack)["issued"] == 1
    path = f"/v1/reward-grants/{grant['grant_id']}/rollback"
    assert call(rewards_api, "POST", path, "/v1/reward-grants/{grant_id}/rollback")[0] == 200
    assert stock(rewards_api, coupon)["available"] == 3 and stock(rewards_api, vip)["available"] == 3


@pytest.mark.parametrize(("parts", "field"), [
    ("missing", "body.content.BUNDLE.items.0.reward_id"),
    ("bundle", "body.content.BUNDLE.items.0.reward_id"),
    ("too_many", "body.content.BUNDLE.items"),
    ("twice", "body.content.BUNDLE.items"),
])
def test_a_bundle_is_checked_when_made(apis, stack, parts, field):
    rewards_api, _ = apis
    coupon = reward(rewards_api, 10)
    items = {"missing": [{"reward_id": "nope"}],
             "bundle": [{"reward_id": bundle(rewards_api, {coupon: 1})}],
             "too_many": [{"reward_id": f"r{i}"} for i in range(21)],
             "twice": [{"reward_id": coupon}, {"reward_id": coupon, "quantity": 2}]}[parts]
    body = {"name": "pack", "reward_type": "BUNDLE", "content": {"items": items}}
    status, answer = call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body=body)
    assert status == 422, answer
    assert any(d["field"].startswith(field) for d in answer["error"]["details"]), answer


def test_a_user_cannot_make_a_bundle(apis):
    rewards_api, _ = apis
    body = {"name": "pack", "reward_type": "BUNDLE", "content": {"items": [{"reward_id": "x"}]}}
    assert call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body=body, who=claims("t1", "u", "[user]"))[0] == 403

