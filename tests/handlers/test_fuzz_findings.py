"""Server errors the fuzzer (tests/e2e/test_fuzz.py) found, each replayed on the handler that answered 500."""

from __future__ import annotations

import json

import pytest

from marketing.cps.signing import signed_headers
from tests.support import Function, body_of, claims, http_event

ADMIN = claims("t1", "ops", "[admin]")
COUPON = {"name": "5 off", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500}}
CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "status": "ACTIVE"}


def call(fn, method, path, route, body=None) -> tuple[int, dict]:
    answer = fn(http_event(method, path, route, body=body, claims_=ADMIN))
    return answer["statusCode"], body_of(answer)


def test_a_time_before_year_1000_round_trips(stack):
    """`strftime("%Y")` wrote year 176 as `176`: the reward was stored, then every read of it was a 500."""
    rewards = Function("RewardsApiFunction", stack)
    status, reward = call(rewards, "POST", "/v1/rewards", "/v1/rewards",
                          {**COUPON, "valid_from": "0176-09-02T23:42:51Z", "valid_until": "0313-02-18T07:28:09Z"})
    assert status == 201, reward
    assert reward["valid_from"].startswith("0176-09-02T23:42:51")
    assert call(rewards, "GET", f"/v1/rewards/{reward['reward_id']}", "/v1/rewards/{reward_id}") == (200, reward)
    status, page = call(rewards, "GET", "/v1/rewards", "/v1/rewards")
    assert status == 200 and page["items"] == [reward]


@pytest.mark.parametrize(("function", "path", "body", "field"), [
    ("RewardsApiFunction", "/v1/rewards", {**COUPON, "valid_from": "0001-01-01T00:00:00+05:00"}, "body.valid_from"),
    ("CampaignsApiFunction", "/v1/campaigns",
     {**CAMPAIGN, "start_time": "2026-01-01T00:00:00Z", "end_time": "9999-12-31T23:00:00-05:00"}, "body.end_time"),
])
def test_a_time_outside_the_utc_calendar_is_a_validation_error(stack, function, path, body, field):
    """A time whose UTC date falls in year 0 or 10000 raised OverflowError (a 500) when converted."""
    status, answer = call(Function(function, stack), "POST", path, path, body)
    assert status == 422, answer
    assert field in [e["field"] for e in answer["error"]["details"]]


def test_a_signed_order_paid_outside_the_utc_calendar_is_a_validation_error(stack):
    raw = json.dumps({"order_id": "o-1", "status": "PAID", "pid": "p", "pay_price": 100, "commission": 10,
                      "paid_at": "0001-01-01T00:00:00+05:00"}).encode()
    event = http_event("POST", "/v1/cps/t1/app1/fake/orders", "/v1/cps/{tenant_id}/{app_id}/{platform}/orders",
                       body=raw, headers=signed_headers("t1", "app1", "fake", raw))
    answer = Function("CpsWebhookFunction", stack)(event)
    assert answer["statusCode"] == 422, answer
    assert "body.paid_at" in [e["field"] for e in body_of(answer)["error"]["details"]]
