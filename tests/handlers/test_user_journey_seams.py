"""The seams between tasks, grants and codes (issue 12), on template.yaml's resources in moto: a code a task
grants is in its user's wallet in full and works on every code route; it counts once against the per-user
limit; validation checks a code against an order without consuming it; redemption enforces the minimum and
records the discount."""

from __future__ import annotations

import pytest

from marketing.rewards import codes
from tests.handlers.test_campaigns_api import drain, make_reward, setup_task, triggered
from tests.handlers.test_redeem_api import ADMIN, SERVICE, apis, call, exported_codes, new_batch, new_reward, user
from tests.support import Function

__all__ = ["apis"]  # a fixture, imported to be used here

COUPON_CODE = {"name": "10% off", "reward_type": "COUPON", "per_user_limit": 1, "valid_days": 30,
               "content": {"discount_type": "PERCENT", "discount_value": 10, "min_order_cents": 2000},
               "generator": {"type": "redeem_code", "length": 10, "prefix": "INV"}}


@pytest.fixture
def campaigns(stack):
    return Function("CampaignsApiFunction", stack), Function("TaskTriggerFunction", stack, publishes=True), \
        Function("GrantWorkerFunction", stack)


def wallet(rewards_api, user_id: str, who) -> list[dict]:
    status, page = call(rewards_api, "GET", f"/v1/users/{user_id}/rewards", "/v1/users/{user_id}/rewards", who=who)
    assert status == 200, page
    return page["items"]


def validate(redeem_api, code: str, user_id: str, order: dict | None = None, who=None) -> dict:
    body = {"code": code, "user_id": user_id, **({"order": order} if order else {})}
    status, answer = call(redeem_api, "POST", "/v1/redeem/validate", "/v1/redeem/validate", who=who or user(user_id),
                          body=body)
    assert status == 200, answer
    return answer


def granted_code(stack, campaigns, rewards_api, user_id: str = "alice", **reward) -> tuple[dict, str]:
    """A task grants the reward to `user_id`; answers the reward and the full code the user's wallet shows."""
    api, engine, worker = campaigns
    made = make_reward(stock=10, **{**COUPON_CODE, **reward})
    setup_task(api, made["reward_id"])
    engine(triggered(user_id, f"reg-{user_id}"))
    drain(stack, worker)
    [item] = wallet(rewards_api, user_id, user(user_id))
    return made, item["code"]


def test_a_task_granted_code_is_in_its_owners_wallet_in_full_and_masked_for_staff(stack, campaigns, apis):
    rewards_api, redeem_api = apis
    reward, code = granted_code(stack, campaigns, rewards_api)
    [mine] = wallet(rewards_api, "alice", user("alice"))
    assert codes.is_well_formed(code) and code.startswith("INV-")
    assert (mine["reward_name"], mine["reward_type"], mine["status"], mine["source"]) == \
        ("10% off", "COUPON", "DISTRIBUTED", "task")
    assert mine["issued"] == {"discount_type": "PERCENT", "discount_value": 10, "min_order_cents": 2000}
    assert mine["valid_from"] and mine["valid_until"] > mine["valid_from"]
    [seen] = wallet(rewards_api, "alice", ADMIN)
    assert seen["code"] == codes.mask(code) and code not in str(seen)
    assert call(rewards_api, "GET", "/v1/users/alice/rewards", "/v1/users/{user_id}/rewards",
                who=user("bob"))[0] == 403


def test_codes_without_a_batch_work_on_every_code_route(stack, campaigns, apis):
    rewards_api, redeem_api = apis
    _, code = granted_code(stack, campaigns, rewards_api)
    status, view = call(redeem_api, "GET", f"/v1/redeem-codes/{code}", "/v1/redeem-codes/{code}")
    assert status == 200 and (view["batch_id"], view["assigned_to"], view["status"]) == (None, "alice", "UNUSED")
    status, assigned = call(redeem_api, "POST", f"/v1/redeem-codes/{code}/assign", "/v1/redeem-codes/{code}/assign",
                            body={"user_id": "alice"})
    assert status == 200 and assigned["code"] == code
    status, revoked = call(redeem_api, "POST", f"/v1/redeem-codes/{code}/revoke", "/v1/redeem-codes/{code}/revoke")
    assert status == 200 and revoked["status"] == "REVOKED"


def test_a_task_granted_code_counts_once_against_the_per_user_limit(stack, campaigns, apis):
    # Given a per_user_limit of 1 the task grant used
    rewards_api, redeem_api = apis
    reward, code = granted_code(stack, campaigns, rewards_api)
    # When its user redeems the very code
    status, grant = call(redeem_api, "POST", "/v1/redeem", "/v1/redeem", who=user("alice"),
                         body={"code": code, "user_id": "alice", "order": {"amount_cents": 3000}})
    # Then it is that grant that is used, with the discount; stock was taken once
    assert status == 200, grant
    assert (grant["status"], grant["order_cents"], grant["discount_cents"]) == ("USED", 3000, 300)
    [item] = wallet(rewards_api, "alice", user("alice"))
    assert (item["grant_id"], item["status"], item["discount_cents"]) == (grant["grant_id"], "USED", 300)
    stock = call(rewards_api, "GET", f"/v1/rewards/{reward['reward_id']}", "/v1/rewards/{reward_id}")[1]["stock"]
    assert (stock["available"], stock["issued"]) == (9, 1)


def test_validation_checks_the_order_and_consumes_nothing(stack, campaigns, apis):
    rewards_api, redeem_api = apis
    _, code = granted_code(stack, campaigns, rewards_api)
    answer = validate(redeem_api, code, "alice", {"amount_cents": 3099, "currency": "EUR"})
    assert (answer["valid"], answer["discount_cents"], answer["reward"]["name"]) == (True, 309, "10% off")
    below = validate(redeem_api, code, "alice", {"amount_cents": 1999})
    assert (below["valid"], below["reason"], below["discount_cents"]) == (False, "ORDER_BELOW_MINIMUM", 0)
    assert validate(redeem_api, code, "bob")["reason"] == "CODE_ASSIGNED_TO_ANOTHER_USER"
    # nothing was consumed: the code still redeems; below the minimum, redemption refuses with 422
    status, error = call(redeem_api, "POST", "/v1/redeem", "/v1/redeem", who=user("alice"),
                         body={"code": code, "user_id": "alice", "order": {"amount_cents": 1999}})
    assert (status, error["error"]["code"], error["error"]["details"][0]["field"]) == \
        (422, "ORDER_BELOW_MINIMUM", "order.amount_cents")
    assert call(redeem_api, "POST", "/v1/redeem", "/v1/redeem", who=user("alice"),
                body={"code": code, "user_id": "alice"})[0] == 200
    assert validate(redeem_api, code, "alice")["reason"] == "CODE_USED"


def test_validation_gives_redemptions_reasons_and_counts_toward_the_lockout(stack, apis, monkeypatch):
    monkeypatch.setenv("REDEEM_MAX_FAILURES", "3")
    rewards_api, redeem_api = apis
    rid = new_reward(rewards_api, reward_type="COUPON", content={"discount_type": "AMOUNT", "discount_value": 5000},
                     total_stock=1, per_user_limit=1)
    a, b = exported_codes(stack, _export(redeem_api, new_batch(redeem_api, rid, count=2)["batch_id"]))
    assert validate(redeem_api, a, "u1", {"amount_cents": 3000})["discount_cents"] == 3000  # capped at the order
    assert validate(redeem_api, a, "u1")["discount_cents"] == 5000
    assert call(redeem_api, "POST", "/v1/redeem", "/v1/redeem", who=SERVICE, body={"code": a, "user_id": "u1"})[0] \
        == 200
    assert validate(redeem_api, b, "u1")["reason"] == "OUT_OF_STOCK"
    assert validate(redeem_api, "ZZZZ-ZZZZ-ZZZZ", "u2")["reason"] in ("CODE_MALFORMED", "CODE_NOT_FOUND")
    for _ in range(2):
        validate(redeem_api, a, "u2")  # used by another: a guess, counted
    status, error = call(redeem_api, "POST", "/v1/redeem/validate", "/v1/redeem/validate", who=user("u2"),
                         body={"code": a, "user_id": "u2"})
    assert (status, error["error"]["code"]) == (429, "TOO_MANY_FAILED_REDEMPTIONS")


def _export(redeem_api, batch_id: str) -> dict:
    status, export = call(redeem_api, "POST", f"/v1/redeem-code-batches/{batch_id}/export",
                          "/v1/redeem-code-batches/{batch_id}/export", body={})
    assert status == 201, export
    return export
