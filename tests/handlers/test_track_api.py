"""Track API handler tests: the function's own handler, fed sample events from events/ or built ones,
against template.yaml's table in moto."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.support import Function, body_of, bus_tap, claims, http_event, sample_event

ADMIN = claims("t1", "ops", "[admin]")
USER = claims("t1", "u-1001", "[user]")


@pytest.fixture
def track_api(stack):
    return Function("TrackApiFunction", stack)


def table_items(stack) -> list[dict]:
    return boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]


def post_track(track_api, body, claims_=ADMIN, headers=None):
    return track_api(http_event("POST", "/tracks", "/tracks", body=body, claims_=claims_, headers=headers))


def test_get_promo_creates_the_code_once(track_api):
    first = track_api(sample_event("track_api/get_promo.json"))
    again = track_api(sample_event("track_api/get_promo.json"))

    assert first["statusCode"] == 200
    promo = body_of(first)
    assert body_of(again) == promo
    assert promo["user_id"] == "u-1001" and promo["track_type"] == 1
    assert len(promo["promcode"]) >= 8 and not set(promo["promcode"]) & set("0O1IL")
    assert promo["share_url"].endswith("/t1/app1/" + promo["promcode"])  # codes are unique per tenant and app
    assert promo["created_at"].endswith("Z")


def test_codes_differ_per_track_type_and_user(track_api):
    codes = {body_of(track_api(http_event("GET", f"/tracks/{u}/{t}", "/tracks/{user_id}/{track_type}",
                                          claims_=ADMIN)))["promcode"] for u in ("a", "b") for t in (1, 2)}
    assert len(codes) == 4


def test_a_user_gets_only_their_own_code(track_api, stack):
    # Given a user token for u-1001, when it asks for another user's code, then 403 and nothing is written
    answer = track_api(http_event("GET", "/tracks/u-9/1", "/tracks/{user_id}/{track_type}", claims_=USER))
    assert answer["statusCode"] == 403
    assert body_of(answer)["error"]["code"] == "FORBIDDEN"
    assert table_items(stack) == []


def test_missing_claims_are_unauthorized(track_api):
    answer = track_api(http_event("GET", "/tracks/u-1/1", "/tracks/{user_id}/{track_type}",
                                  claims_={"sub": "x"}))
    assert answer["statusCode"] == 401
    assert body_of(answer)["error"]["code"] == "UNAUTHORIZED"


def test_new_user_is_recorded_once_and_first_attribution_wins(track_api, stack):
    first = track_api(sample_event("track_api/post_track_new_user.json"))
    assert first["statusCode"] == 201
    record = body_of(first)

    # A second referrer claims the same new user: the original record comes back, unchanged.
    again = post_track(track_api, {"user_id": "u-2002", "track_type": 2, "referrer": "someone-else"})
    assert again["statusCode"] == 200
    assert body_of(again) == record

    summary = track_api(http_event("GET", "/tracks/summary", "/tracks/summary", query={"referrer": "u-1001"},
                                   claims_=ADMIN))
    assert body_of(summary)["counts"] == {"2": 1}
    other = track_api(http_event("GET", "/tracks/summary", "/tracks/summary", query={"referrer": "someone-else"},
                                 claims_=ADMIN))
    assert body_of(other)["counts"] == {}


def test_visits_are_recorded_each_time_and_counted(track_api):
    for _ in range(3):
        assert post_track(track_api, {"user_id": "v", "track_type": 1, "referrer": "r"})["statusCode"] == 201
    page = body_of(track_api(http_event("GET", "/tracks", "/tracks", query={"referrer": "r", "track_type": "1"},
                                        claims_=ADMIN)))
    assert len(page["items"]) == 3 and page["next_token"] is None
    summary = body_of(track_api(http_event("GET", "/tracks/summary", "/tracks/summary",
                                           query={"referrer": "r"}, claims_=ADMIN)))
    assert summary["counts"] == {"1": 3}


def test_referrer_resolved_from_the_promo_code(track_api):
    code = body_of(track_api(http_event("GET", "/tracks/owner/2", "/tracks/{user_id}/{track_type}",
                                        claims_=ADMIN)))["promcode"]
    answer = post_track(track_api, {"user_id": "newbie", "track_type": 2, "promcode": code})
    assert answer["statusCode"] == 201
    assert body_of(answer)["referrer"] == "owner" and body_of(answer)["promcode"] == code


@pytest.mark.parametrize(("body", "field"), [
    ({"track_type": 1, "referrer": "r"}, "body.user_id"),
    ({"user_id": "u", "track_type": "visit", "referrer": "r"}, "body.track_type"),
    ({"user_id": "u", "track_type": 0, "referrer": "r"}, "body.track_type"),
    ({"user_id": "u#x", "track_type": 1, "referrer": "r"}, "body.user_id"),
    ({"user_id": "u", "track_type": 1}, "referrer"),
    ({"user_id": "u", "track_type": 1, "referrer": "u"}, "referrer"),
    ({"user_id": "u", "track_type": 7, "referrer": "r"}, "track_type"),
    ({"user_id": "u", "track_type": 1, "promcode": "ZZZZZZZZ"}, "promcode"),
])
def test_bad_input_names_the_field_and_writes_nothing(track_api, stack, body, field):
    answer = post_track(track_api, body)
    assert answer["statusCode"] == 422
    error = body_of(answer)["error"]
    assert field in [d["field"] for d in error["details"]]
    assert table_items(stack) == []


def test_malformed_json_is_a_validation_error(track_api):
    answer = track_api(http_event("POST", "/tracks", "/tracks", body="{not json", claims_=ADMIN))
    assert answer["statusCode"] == 422
    assert body_of(answer)["error"]["code"] == "VALIDATION_ERROR"


def test_a_body_naming_another_tenant_is_forbidden(track_api, stack):
    answer = post_track(track_api, {"tenant_id": "t2", "user_id": "u", "track_type": 1, "referrer": "r"})
    assert answer["statusCode"] == 403
    assert table_items(stack) == []


def test_tenants_never_see_each_other(track_api):
    code = body_of(track_api(http_event("GET", "/tracks/shared-id/1", "/tracks/{user_id}/{track_type}",
                                        claims_=ADMIN)))["promcode"]
    other = claims("t2", "ops", "[admin]")
    assert track_api(http_event("GET", f"/promos/{code}", "/promos/{promcode}", claims_=other))["statusCode"] == 404
    theirs = body_of(track_api(http_event("GET", "/tracks/shared-id/1", "/tracks/{user_id}/{track_type}",
                                          claims_=other)))
    assert theirs["promcode"] != code


def test_pagination_and_tampered_tokens(track_api):
    for i in range(5):
        post_track(track_api, {"user_id": f"v{i}", "track_type": 2, "referrer": "r"})
    seen, token = [], None
    while True:
        query = {"referrer": "r", "limit": "2", **({"next_token": token} if token else {})}
        page = body_of(track_api(http_event("GET", "/tracks", "/tracks", query=query, claims_=ADMIN)))
        seen += [i["user_id"] for i in page["items"]]
        token = page["next_token"]
        if not token:
            break
    assert sorted(seen) == [f"v{i}" for i in range(5)]

    # A token from tenant t1's query replayed by tenant t2, and garbage, are both 400s.
    first = body_of(track_api(http_event("GET", "/tracks", "/tracks", query={"referrer": "r", "limit": "2"},
                                         claims_=ADMIN)))["next_token"]
    for bad, who in ((first, claims("t2", "ops", "[admin]")), ("!!not-a-token", ADMIN)):
        answer = track_api(http_event("GET", "/tracks", "/tracks", query={"referrer": "r", "next_token": bad},
                                      claims_=who))
        assert answer["statusCode"] == 400
        assert body_of(answer)["error"]["details"][0]["field"] == "next_token"


def test_idempotency_key_replays_the_first_answer(track_api):
    event = sample_event("track_api/post_track_visit.json")
    first, again = track_api(event), track_api(sample_event("track_api/post_track_visit.json"))
    assert first["statusCode"] == again["statusCode"] == 201
    assert body_of(first) == body_of(again)

    changed = sample_event("track_api/post_track_visit.json")
    changed["body"] = json.dumps({"user_id": "u-3003", "track_type": 1, "referrer": "other"})
    answer = track_api(changed)
    assert answer["statusCode"] == 422
    assert body_of(answer)["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_configured_track_types(track_api):
    user_try = track_api(http_event("PUT", "/track-types/3", "/track-types/{track_type}",
                                    body={"name": "share_click"}, claims_=USER))
    assert user_try["statusCode"] == 403
    created = track_api(sample_event("track_api/put_track_type.json"))
    assert created["statusCode"] == 201
    assert track_api(sample_event("track_api/put_track_type.json"))["statusCode"] == 409
    assert post_track(track_api, {"user_id": "u", "track_type": 3, "referrer": "r"})["statusCode"] == 201
    types = body_of(track_api(sample_event("track_api/list_track_types.json")))
    assert [t["track_type"] for t in types] == [1, 2, 3]


def test_promo_owner_and_qr_code(track_api):
    code = body_of(track_api(http_event("GET", "/tracks/owner/1", "/tracks/{user_id}/{track_type}",
                                        claims_=ADMIN)))["promcode"]
    owner = track_api(http_event("GET", f"/promos/{code}", "/promos/{promcode}", claims_=ADMIN))
    assert body_of(owner) == {"promcode": code, "user_id": "owner", "track_type": 1,
                              "share_url": f"https://example.com/s/t1/app1/{code}"}
    qr = track_api(http_event("GET", f"/promos/{code}/qrcode.svg", "/promos/{promcode}/qrcode.svg",
                              claims_=ADMIN))
    assert qr["statusCode"] == 200
    assert qr["headers"]["Content-Type"] == "image/svg+xml"
    assert qr["body"].lstrip().startswith("<svg")
    unknown = track_api(sample_event("track_api/get_promo_qrcode.json"))
    assert unknown["statusCode"] == 404


def test_records_emit_domain_events(track_api, stack):
    # Given a queue subscribed to tracking events on the bus
    delivered_events = bus_tap(stack, {"source": ["marketing.tracking"]})

    # When a new user arrives, and the same call is repeated
    record = body_of(track_api(sample_event("track_api/post_track_new_user.json")))
    track_api(sample_event("track_api/post_track_new_user.json"))
    post_track(track_api, {"user_id": "v", "track_type": 1, "referrer": "r"})

    # Then the bus carried track.new_user once (the repeat committed nothing), and one track.visit
    delivered = delivered_events()
    kinds = sorted(e["detail-type"] for e in delivered)
    assert kinds == ["track.new_user", "track.visit"]
    new_user = [e["detail"] for e in delivered if e["detail-type"] == "track.new_user"]
    assert {d["event_id"] for d in new_user} == {record["id"]}
    assert new_user[0]["tenant_id"] == "t1" and new_user[0]["referrer"] == "u-1001"


def test_unknown_route_uses_the_error_shape(track_api):
    answer = track_api(http_event("DELETE", "/tracks", "/tracks", claims_=ADMIN))
    assert answer["statusCode"] == 404
    assert body_of(answer)["error"]["code"] == "ROUTE_NOT_FOUND"


def test_health(stack):
    health = Function("HealthFunction", stack)
    answer = health(sample_event("health/get_health.json"))
    assert answer["statusCode"] == 200 and body_of(answer) == {"status": "UP"}


def test_a_user_may_post_only_so_many_tracks_per_window(track_api, stack, monkeypatch):
    # Given a limit of 3 tracks per user token and day (the template says 10 a minute; a day cannot roll over
    # during the test)
    monkeypatch.setenv("RATE_LIMIT_TRACKS", "3")
    monkeypatch.setenv("RATE_LIMIT_TRACKS_WINDOW_SECONDS", "86400")
    visit = {"user_id": "u-1001", "track_type": 1, "referrer": "r"}
    assert [post_track(track_api, visit, USER)["statusCode"] for _ in range(3)] == [201] * 3

    # When the user posts a fourth
    before = table_items(stack)
    answer = post_track(track_api, visit, USER, headers={"Idempotency-Key": "fourth"})

    # Then it is refused with a Retry-After until the window closes, and nothing is written
    assert answer["statusCode"] == 429, answer
    assert body_of(answer)["error"]["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(answer["headers"]["Retry-After"]) <= 86400
    assert table_items(stack) == before

    # Another user, and staff tokens, are not held back by it
    other = claims("t1", "u-2002", "[user]")
    assert post_track(track_api, {**visit, "user_id": "u-2002"}, other)["statusCode"] == 201
    assert [post_track(track_api, visit, who)["statusCode"] for who in (ADMIN, claims("t1", "be", "[service]"))
            ] == [201, 201]

    # And the refusal is not replayed for its Idempotency-Key: once allowed again, the request runs
    monkeypatch.setenv("RATE_LIMIT_TRACKS", "4")
    assert post_track(track_api, visit, USER, headers={"Idempotency-Key": "fourth"})["statusCode"] == 201
