"""The shared HTTP wiring (`marketing.core.http`) on real functions of the template, in moto: bodies that
cannot be read answer a 4xx in the one error shape and write nothing, and an Idempotency-Key replays only
for the caller (tenant, app, subject, role set) and route that first used it."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from marketing.core.http import MAX_BODY_DEPTH, ErrorBody
from marketing.cps.signing import signed_headers
from tests.support import Function, body_of, claims, http_event

ADMIN = claims("t1", "ops", "[admin]")
CAMPAIGN = {"name": "Launch", "campaign_type": "PROMOTION", "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2099-01-01T00:00:00Z", "status": "ACTIVE"}
COUPON = {"name": "5 off", "reward_type": "COUPON", "content": {"discount_type": "AMOUNT", "discount_value": 500},
          "total_stock": 5}

# (function, method, path, route, a valid body): representative write routes of five functions
ROUTES = [
    ("RewardsApiFunction", "POST", "/v1/rewards", "/v1/rewards", COUPON),
    ("TrackApiFunction", "POST", "/tracks", "/tracks", {"user_id": "bob", "track_type": 1, "referrer": "alice"}),
    ("CampaignsApiFunction", "POST", "/v1/campaigns", "/v1/campaigns", CAMPAIGN),
    ("StatsIntakeFunction", "POST", "/v1/events", "/v1/events",
     {"events": [{"event_id": "e1", "event_type": "activity.visit", "topic_type": "activity", "topic_id": "a",
                  "wu_id": "w1"}]}),
    ("CpsApiFunction", "PUT", "/v1/cps/settings", "/v1/cps/settings",
     {"levels": 1, "rates_bp": [5000, 1000], "hold_days": 0}),
    # a route that takes no body model: the body is still checked
    ("RewardsApiFunction", "POST", "/v1/inventory/r-1/confirm", "/v1/inventory/{reservation_id}/confirm", None),
]
IDS = [f"{r[1]} {r[2]}" for r in ROUTES]


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def stored(stack) -> list[dict]:
    return boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]


def send(stack, route, body, content_type: str | None = None) -> tuple[int, dict]:
    logical_id, method, path, route_path, _ = route
    answer = Function(logical_id, stack)(http_event(method, path, route_path, body=body, claims_=ADMIN,
                                                    content_type=content_type))
    return answer["statusCode"], body_of(answer)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream",
                                          "multipart/form-data"])
def test_a_body_in_another_media_type_is_415(stack, route, content_type):
    status, answer = send(stack, route, json.dumps(route[4] or {}), content_type)
    assert status == 415, answer
    ErrorBody.model_validate(answer)
    assert answer["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert answer["error"]["details"][0]["field"] == "headers.content-type"
    assert stored(stack) == []


NOT_UTF8 = b'{"name": "\xff\xfe caf\xe9"}'
MALFORMED = {
    "not UTF-8": NOT_UTF8,
    "nested 5,000 deep": "[" * 5000 + "]" * 5000,
    f"nested {MAX_BODY_DEPTH + 1} deep": json.dumps(nested(MAX_BODY_DEPTH + 1)),
}


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_body_that_cannot_be_read_is_400(stack, route, body):
    status, answer = send(stack, route, body)
    assert status == 400, answer
    ErrorBody.model_validate(answer)
    assert answer["error"]["code"] == "MALFORMED_BODY"
    assert answer["error"]["details"][0]["field"] == "body"
    assert stored(stack) == []


def test_bad_base64_is_400(stack):
    event = http_event("POST", "/v1/rewards", "/v1/rewards", body=NOT_UTF8, claims_=ADMIN)
    assert event["isBase64Encoded"]
    event["body"] = "not base64!"
    answer = Function("RewardsApiFunction", stack)(event)
    assert (answer["statusCode"], body_of(answer)["error"]["code"]) == (400, "MALFORMED_BODY")


def test_a_body_nested_as_deep_as_dynamodb_stores_is_read(stack):
    """The bound is DynamoDB's own: a body at the limit reaches validation (which names the field)."""
    status, answer = send(stack, ROUTES[0], {**COUPON, "content": nested(MAX_BODY_DEPTH - 1)})
    assert status == 422 and answer["error"]["code"] == "VALIDATION_ERROR"


def test_the_webhook_reads_its_raw_bytes_whatever_their_media_type(stack):
    """The CPS webhook checks its signature over the bytes sent: it is exempt from the JSON-only rule."""
    raw = json.dumps({"order_id": "o-1", "status": "PAID", "pid": "p-unknown", "pay_price": 100,
                      "commission": 10}).encode()
    event = http_event("POST", "/v1/cps/t1/app1/fake/orders", "/v1/cps/{tenant_id}/{app_id}/{platform}/orders",
                       body=raw, content_type="application/octet-stream",
                       headers=signed_headers("t1", "app1", "fake", raw))
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == raw
    answer = Function("CpsWebhookFunction", stack)(event)
    assert answer["statusCode"] == 200, answer


# --- idempotency scope ----------------------------------------------------------------------------------------

def create_reward(rewards, who: dict, key: str) -> tuple[int, dict]:
    answer = rewards(http_event("POST", "/v1/rewards", "/v1/rewards", body=COUPON, claims_=who,
                                headers={"Idempotency-Key": key}))
    return answer["statusCode"], body_of(answer)


def test_an_idempotency_key_does_not_replay_across_roles(stack):
    rewards = Function("RewardsApiFunction", stack)
    status, first = create_reward(rewards, ADMIN, "k-1")
    assert status == 201
    # The same subject with the user role: refused as a user, not handed the admin's remembered 201
    status, answer = create_reward(rewards, claims("t1", "ops", "[user]"), "k-1")
    assert status == 403 and answer["error"]["code"] == "FORBIDDEN"


def test_an_idempotency_key_replays_for_the_same_role_set_in_any_order(stack):
    rewards = Function("RewardsApiFunction", stack)
    first = create_reward(rewards, claims("t1", "ops", "[admin user]"), "k-2")
    assert first[0] == 201
    assert create_reward(rewards, claims("t1", "ops", "[user admin]"), "k-2") == first


def test_an_idempotency_key_does_not_replay_across_apps(stack):
    rewards = Function("RewardsApiFunction", stack)
    status, first = create_reward(rewards, ADMIN, "k-3")
    status_b, other_app = create_reward(rewards, claims("t1", "ops", "[admin]", app="app2"), "k-3")
    assert (status, status_b) == (201, 201)
    assert other_app["reward_id"] != first["reward_id"]
