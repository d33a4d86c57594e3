"""CPS API handler tests: affiliates, their invite chain and settings, on template.yaml's table in moto."""

from __future__ import annotations

import boto3
import pytest

from tests.support import Function, body_of, claims, http_event, sample_event

ADMIN = claims("t1", "ops", "[admin]")


@pytest.fixture
def cps_api(stack):
    return Function("CpsApiFunction", stack)


def table_items(stack) -> list[dict]:
    return boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]


def register(cps_api, user_id, invite_code=None, claims_=ADMIN):
    body = {"user_id": user_id, **({"invite_code": invite_code} if invite_code else {})}
    return cps_api(http_event("POST", "/v1/affiliates", "/v1/affiliates", body=body, claims_=claims_))


def get(cps_api, path, route, query=None, claims_=ADMIN):
    return cps_api(http_event("GET", path, route, query=query, claims_=claims_))


def chain(cps_api, *users):
    """Register users[0] without an inviter and each next one under the previous one's invite code."""
    made, code = [], None
    for user in users:
        answer = register(cps_api, user, code)
        assert answer["statusCode"] == 201, body_of(answer)
        made.append(body_of(answer))
        code = made[-1]["invite_code"]
    return made


def test_registration_answers_code_link_qr_and_pid(cps_api, stack):
    answer = cps_api(sample_event("cps_api/register_affiliate.json"))
    assert answer["statusCode"] == 201
    affiliate = body_of(answer)
    assert affiliate["user_id"] == "u-a" and affiliate["inviter_id"] is None
    assert affiliate["invite_url"] == f"https://example.com/s/t1/app1/{affiliate['invite_code']}"
    assert affiliate["qrcode_svg"].lstrip().startswith("<svg")
    assert len(affiliate["pid"]) == 10
    # The invite code is the tracking capability's new-user promo code of the user: one code, not a copy.
    promo = body_of(Function("TrackApiFunction", stack)(
        http_event("GET", "/tracks/u-a/2", "/tracks/{user_id}/{track_type}", claims_=ADMIN)))
    assert promo["promcode"] == affiliate["invite_code"]
    again = cps_api(sample_event("cps_api/register_affiliate.json"))
    assert again["statusCode"] == 200 and body_of(again) == affiliate


def test_relations_for_levels_one_and_two(cps_api):
    a, b, c = chain(cps_api, "A", "B", "C")
    assert (b["inviter_id"], c["inviter_id"]) == ("A", "B")
    upline = body_of(get(cps_api, "/v1/affiliates/C/upline", "/v1/affiliates/{user_id}/upline"))
    assert [(r["level"], r["user_id"]) for r in upline["items"]] == [(1, "B"), (2, "A")]
    level = {n: body_of(get(cps_api, "/v1/affiliates/A/downline", "/v1/affiliates/{user_id}/downline",
                            {"level": str(n)}))["items"] for n in (1, 2)}
    assert [r["user_id"] for r in level[1]] == ["B"] and [r["user_id"] for r in level[2]] == ["C"]
    # N = 2 by default: D under C is level 3 of A, which is not stored.
    chain_d = register(cps_api, "D", c["invite_code"])
    assert body_of(get(cps_api, "/v1/affiliates/D/upline", "/v1/affiliates/{user_id}/upline"))["items"][-1][
        "user_id"] == "B"
    assert chain_d["statusCode"] == 201
    assert body_of(get(cps_api, "/v1/affiliates/A/downline", "/v1/affiliates/{user_id}/downline",
                       {"level": "2"}))["items"] == level[2]


def test_downline_pages_and_tokens_are_bound_to_the_query(cps_api):
    (a,) = chain(cps_api, "boss")
    for i in range(5):
        assert register(cps_api, f"d{i}", a["invite_code"])["statusCode"] == 201
    seen, token = [], None
    while True:
        query = {"level": "1", "limit": "2", **({"next_token": token} if token else {})}
        page = body_of(get(cps_api, "/v1/affiliates/boss/downline", "/v1/affiliates/{user_id}/downline", query))
        seen += [r["user_id"] for r in page["items"]]
        token = page["next_token"]
        if not token:
            break
    assert seen == [f"d{i}" for i in range(5)]
    first = body_of(get(cps_api, "/v1/affiliates/boss/downline", "/v1/affiliates/{user_id}/downline",
                        {"limit": "2"}))["next_token"]
    other = get(cps_api, "/v1/affiliates/d0/downline", "/v1/affiliates/{user_id}/downline",
                {"next_token": first})
    assert other["statusCode"] == 400 and body_of(other)["error"]["details"][0]["field"] == "next_token"


def test_inviter_is_set_once_and_never_changes(cps_api, stack):
    a, b, c = chain(cps_api, "A", "B", "C")
    (x,) = chain(cps_api, "X")
    before = table_items(stack)

    # Self-invitation, a cycle (A under its own downline C), and a new inviter for B: all refused, nothing written
    self_invite = register(cps_api, "X", x["invite_code"])
    cycle = register(cps_api, "A", c["invite_code"])
    moved = register(cps_api, "B", x["invite_code"])
    assert [a["statusCode"] for a in (self_invite, cycle, moved)] == [409, 409, 409]
    assert [body_of(a)["error"]["code"] for a in (self_invite, cycle, moved)] == ["SELF_INVITE", "CYCLE",
                                                                                  "INVITER_FIXED"]
    assert table_items(stack) == before
    # Registering again with the same inviter, or with none, answers the profile unchanged
    assert body_of(register(cps_api, "B", a["invite_code"])) == b
    assert body_of(register(cps_api, "B")) == b


def test_a_new_user_cannot_invite_itself(cps_api, stack):
    track = Function("TrackApiFunction", stack)
    code = body_of(track(http_event("GET", "/tracks/solo/2", "/tracks/{user_id}/{track_type}",
                                    claims_=ADMIN)))["promcode"]
    answer = register(cps_api, "solo", code)
    assert answer["statusCode"] == 409 and body_of(answer)["error"]["code"] == "SELF_INVITE"
    assert get(cps_api, "/v1/affiliates/solo", "/v1/affiliates/{user_id}")["statusCode"] == 404


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body.user_id"),
    ({"user_id": "a#b"}, "body.user_id"),
    ({"user_id": "u", "invite_code": "short"}, "body.invite_code"),
    ({"user_id": "u", "invite_code": "ZZZZZZZZ"}, "invite_code"),
])
def test_bad_registrations_name_the_field_and_write_nothing(cps_api, stack, body, field):
    answer = cps_api(http_event("POST", "/v1/affiliates", "/v1/affiliates", body=body, claims_=ADMIN))
    assert answer["statusCode"] == 422
    assert field in [d["field"] for d in body_of(answer)["error"]["details"]]
    assert table_items(stack) == []


def test_the_inviter_must_be_an_affiliate(cps_api, stack):
    track = Function("TrackApiFunction", stack)
    code = body_of(track(http_event("GET", "/tracks/plain/2", "/tracks/{user_id}/{track_type}",
                                    claims_=ADMIN)))["promcode"]
    answer = register(cps_api, "newbie", code)
    assert answer["statusCode"] == 422 and body_of(answer)["error"]["details"][0]["field"] == "invite_code"
    assert get(cps_api, "/v1/affiliates/newbie", "/v1/affiliates/{user_id}")["statusCode"] == 404


def test_users_act_only_on_themselves_and_tenants_are_apart(cps_api):
    me = claims("t1", "u-me", "[user]")
    assert register(cps_api, "u-me", claims_=me)["statusCode"] == 201
    assert register(cps_api, "u-other", claims_=me)["statusCode"] == 403
    assert get(cps_api, "/v1/affiliates/u-me/earnings", "/v1/affiliates/{user_id}/earnings",
               claims_=me)["statusCode"] == 200
    assert get(cps_api, "/v1/affiliates/u-x/earnings", "/v1/affiliates/{user_id}/earnings",
               claims_=me)["statusCode"] == 403
    assert get(cps_api, "/v1/affiliates/u-me", "/v1/affiliates/{user_id}",
               claims_=claims("t2", "ops", "[admin]"))["statusCode"] == 404
    assert get(cps_api, "/v1/cps/settings", "/v1/cps/settings", claims_=me)["statusCode"] == 403


def test_settings_default_and_validated(cps_api, stack):
    assert body_of(cps_api(sample_event("cps_api/get_settings.json"))) == {
        "levels": 2, "rates_bp": [6000, 2000, 1000], "hold_days": 7, "updated_at": None}
    put = cps_api(sample_event("cps_api/put_settings.json"))
    assert put["statusCode"] == 200 and body_of(put)["updated_at"]
    for bad in ({"levels": 1, "rates_bp": [6000, 2000, 1000]}, {"levels": 2, "rates_bp": [9000, 2000, 1000]},
                {"levels": 11, "rates_bp": [0] * 12}, {"levels": 1, "rates_bp": [-1, 5]}):
        answer = cps_api(http_event("PUT", "/v1/cps/settings", "/v1/cps/settings", body=bad, claims_=ADMIN))
        assert answer["statusCode"] == 422, bad
        assert body_of(answer)["error"]["details"][0]["field"].startswith("body")
