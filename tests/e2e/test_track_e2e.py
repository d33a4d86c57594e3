"""The Track API over HTTP against the local stack: auth, the full flow, isolation, concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.conftest import Api


def test_health_needs_no_token(local_stack):
    answer = local_stack.anonymous().get("/health")
    assert answer.status_code == 200 and answer.json() == {"status": "UP"}


def test_tokens_are_checked_like_the_jwt_authorizer(local_stack, tenant):
    assert local_stack.anonymous().get("/tracks/u/1").status_code == 401
    bad = Api(local_stack.api_url, local_stack.token(tenant) + "x").get("/tracks/u/1")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "UNAUTHORIZED"
    expired = Api(local_stack.api_url, local_stack.token(tenant, ttl_seconds=-60)).get("/tracks/u/1")
    assert expired.status_code == 401


def test_the_referral_flow(local_stack, tenant):
    # Given a referrer with a share code, and an app backend with a service token
    referrer = local_stack.api(tenant, sub="alice", roles="user")
    backend = local_stack.api(tenant, sub="app-backend", roles="service")
    promo = referrer.get("/tracks/alice/2").json()

    # When bob arrives through the code, twice, and carol visits
    first = backend.post("/tracks", {"user_id": "bob", "track_type": 2, "promcode": promo["promcode"]})
    again = backend.post("/tracks", {"user_id": "bob", "track_type": 2, "promcode": promo["promcode"]})
    visit = backend.post("/tracks", {"user_id": "carol", "track_type": 1, "referrer": "alice"})

    # Then bob is attributed once, and alice sees her records and counts
    assert (first.status_code, again.status_code, visit.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    listed = referrer.get("/tracks", params={"referrer": "alice"}).json()
    assert sorted(i["user_id"] for i in listed["items"]) == ["bob", "carol"]
    assert referrer.get("/tracks/summary", params={"referrer": "alice"}).json()["counts"] == {"1": 1, "2": 1}
    assert referrer.get(f"/promos/{promo['promcode']}").json()["user_id"] == "alice"
    qr = referrer.get(f"/promos/{promo['promcode']}/qrcode.svg")
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml" and "<svg" in qr.text

    # And alice cannot read someone else's records
    assert referrer.get("/tracks", params={"referrer": "bob"}).status_code == 403


def test_other_tenants_see_nothing(local_stack, tenant):
    mine = local_stack.api(tenant).get("/tracks/alice/1").json()
    other = local_stack.api(tenant + "-other")
    assert other.get(f"/promos/{mine['promcode']}").status_code == 404
    assert other.get("/tracks", params={"referrer": "alice"}).json()["items"] == []
    forged = other.post("/tracks", {"tenant_id": tenant, "user_id": "x", "track_type": 1, "referrer": "alice"})
    assert forged.status_code == 403


def test_fifty_simultaneous_first_calls_get_one_code(local_stack, tenant):
    api = local_stack.api(tenant)
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: requests.get(
            f"{api.base}/tracks/racer/1", headers={"Authorization": f"Bearer {api.token}"}, timeout=60), range(50)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["promcode"] for a in answers}) == 1


def test_fifty_simultaneous_new_user_posts_record_one_attribution(local_stack, tenant):
    api = local_stack.api(tenant)
    headers = {"Authorization": f"Bearer {api.token}"}

    def arrive(i: int) -> requests.Response:
        body = {"user_id": "newcomer", "track_type": 2, "referrer": f"ref-{i % 5}"}
        return requests.post(f"{api.base}/tracks", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(arrive, range(50)))

    assert sorted(a.status_code for a in answers).count(201) == 1
    assert {a.status_code for a in answers} <= {200, 201}
    assert len({a.json()["id"] for a in answers}) == 1
    winner = answers[0].json()["referrer"]
    counts = [api.get("/tracks/summary", params={"referrer": f"ref-{i}"}).json()["counts"] for i in range(5)]
    assert sum(c.get("2", 0) for c in counts) == 1
    assert api.get("/tracks/summary", params={"referrer": winner}).json()["counts"] == {"2": 1}


def test_swagger_ui_and_merged_openapi(local_stack):
    page = local_stack.anonymous().get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    spec = local_stack.anonymous().get("/docs/openapi.json").json()
    assert {"/health", "/tracks", "/tracks/{user_id}/{track_type}"} <= set(spec["paths"])


def test_integer_user_ids_are_the_same_users_as_their_text(local_stack, tenant):
    # track-service's user ids are integers: accepted as JSON integers, kept and answered as text
    backend = local_stack.api(tenant, sub="app-backend", roles="service")
    first = backend.post("/tracks", {"user_id": 2002, "track_type": 2, "referrer": 1001})
    again = backend.post("/tracks", {"user_id": "2002", "track_type": 2, "referrer": "1001"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert (first.json()["user_id"], first.json()["referrer"]) == ("2002", "1001") and again.json() == first.json()
    assert backend.post("/tracks", {"user_id": True, "track_type": 1, "referrer": 1001}).status_code == 422
