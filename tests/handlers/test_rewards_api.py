"""Rewards API handler tests on template.yaml's table in moto: typed rewards, stock, inventory and grants."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import zlib

import boto3
import pytest

from marketing.core.identity import Caller, Role
from marketing.rewards import api, dal
from tests.support import Function, body_of, claims, http_event, sample_event, seed_campaign

T = "t1"
ADMIN = claims(T, "ops", "[admin]")
SERVICE = claims(T, "backend", "[service]")
ALICE = claims(T, "alice", "[user]")
CALLER = Caller(sub="campaigns", tenant_id=T, app_id="app1", roles=frozenset({Role.SERVICE}))  # as the pipeline


@pytest.fixture
def rewards_api(stack):
    return Function("RewardsApiFunction", stack)


def call(fn, method, path, route, who=ADMIN, body=None, query=None):
    answer = fn(http_event(method, path, route, body=body, query=query, claims_=who))
    return answer["statusCode"], body_of(answer)


COUPON = {"name": "5 off", "reward_type": "COUPON", "kind_no": "NEWCOMER",
          "content": {"discount_type": "AMOUNT", "discount_value": 500}, "total_stock": 10, "per_user_limit": 2,
          "valid_days": 30, "generator": {"type": "coupon", "template_id": "tpl-1"},
          "validators": [{"type": "time_window", "start": "2026-01-01T00:00:00Z"}, {"type": "stock"}],
          "distributor": {"type": "webhook", "url": "https://hooks.example.com/grant"}}


def create(rewards_api, **fields) -> dict:
    status, reward = call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body={**COUPON, **fields})
    assert status == 201, reward
    return reward


def test_a_reward_round_trips_with_typed_content_and_configurations(rewards_api):
    reward = create(rewards_api)
    assert reward["content"] == {"type": "COUPON", "discount_type": "AMOUNT", "discount_value": 500,
                                 "min_order_cents": 0}
    assert reward["validators"][0] == {"type": "time_window", "start": "2026-01-01T00:00:00Z", "end": None}
    assert reward["distributor"] == {"type": "webhook", "url": "https://hooks.example.com/grant", "secret_name": None}
    assert reward["stock"] == {"total": 10, "available": 10, "reserved": 0, "issued": 0}
    path = f"/v1/rewards/{reward['reward_id']}"
    assert call(rewards_api, "GET", path, "/v1/rewards/{reward_id}") == (200, reward)

    update = {k: v for k, v in COUPON.items() if k not in ("total_stock",)}
    percent = {"discount_type": "PERCENT", "discount_value": 6}
    status, changed = call(rewards_api, "PUT", path, "/v1/rewards/{reward_id}",
                           body={**update, "name": "6 off", "content": percent})
    assert status == 200 and changed["name"] == "6 off" and changed["version"] == 2
    assert changed["stock"]["total"] == 10


@pytest.mark.parametrize(("change", "field"), [
    ({"content": {"amount": 5}}, "body.content"),
    ({"reward_type": "POINTS"}, "body"),
    ({"generator": {"type": "lottery"}}, "body.generator"),
    ({"distributor": {"type": "webhook", "url": "not a url"}}, "body.distributor.webhook.url"),
    # a secret is named inside the tenant's own prefix: no path may reach another tenant's or the platform's
    ({"distributor": {"type": "webhook", "url": "https://h.example", "secret_name": "marketing/dev/cps/webhook/jd"}},
     "body.distributor.webhook.secret_name"),
    ({"validators": [{"type": "frequency", "max_per_user": 0}]}, "body.validators.0.frequency.max_per_user"),
    ({"valid_from": "2026-01-01T00:00:00Z"}, "body"),
    ({"total_stock": -1}, "body.total_stock"),
    ({"content": {"discount_type": "PERCENT", "discount_value": 150}}, "body.content.COUPON"),
])
def test_bad_rewards_are_refused_naming_the_field(rewards_api, stack, change, field):
    status, error = call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body={**COUPON, **change})
    assert status == 422, error
    assert any(d["field"].startswith(field) for d in error["error"]["details"]), error
    assert boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"] == []


UNSAFE_WEBHOOKS = [
    "http://hooks.example.com/grant",                 # not https
    "https://127.0.0.1:9000/grant",                   # loopback
    "https://10.0.0.7/grant",                         # private
    "https://169.254.169.254/latest/meta-data/",      # link-local: the instance metadata service
    "https://100.64.0.1/grant",                       # carrier-grade NAT
    "https://224.0.0.1/grant",                        # multicast
    "https://0.0.0.0/grant",                          # unspecified
    "https://[::1]/grant",
    "https://[fd00::1]/grant",
    "https://[fe80::1]/grant",
    "https://[::ffff:10.0.0.7]/grant",                # IPv4-mapped
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://internal.example.com/grant",             # a public-looking name that resolves to a private address
]


@pytest.mark.parametrize("url", UNSAFE_WEBHOOKS)
def test_a_webhook_into_a_private_network_is_refused_naming_the_field(rewards_api, stack, monkeypatch, url):
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", port))] if host == "internal.example.com"
        else real(host, port, *a, **k)))
    hook = {"type": "webhook", "url": url}
    status, error = call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body={**COUPON, "distributor": hook})
    assert status == 422, error
    assert error["error"]["code"] == "UNSAFE_URL"
    assert error["error"]["details"][0]["field"] == "body.distributor.webhook.url"
    assert boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"] == []

    # and a reward cannot be changed to call it either
    reward = create(rewards_api)
    path, update = f"/v1/rewards/{reward['reward_id']}", {k: v for k, v in COUPON.items() if k != "total_stock"}
    status, error = call(rewards_api, "PUT", path, "/v1/rewards/{reward_id}", body={**update, "distributor": hook})
    assert status == 422 and error["error"]["details"][0]["field"] == "body.distributor.webhook.url"
    assert call(rewards_api, "GET", path, "/v1/rewards/{reward_id}")[1]["version"] == 1


def test_listing_paginates_and_a_deleted_reward_is_gone(rewards_api):
    ids = [create(rewards_api, name=f"r{n}")["reward_id"] for n in range(3)]
    status, page = call(rewards_api, "GET", "/v1/rewards", "/v1/rewards", query={"limit": "2"})
    assert status == 200 and len(page["items"]) == 2 and page["next_token"]
    _, rest = call(rewards_api, "GET", "/v1/rewards", "/v1/rewards",
                   query={"limit": "2", "next_token": page["next_token"]})
    assert {r["reward_id"] for r in page["items"] + rest["items"]} == set(ids)
    other = claims("t2", "ops", "[admin]")
    crafted = call(rewards_api, "GET", "/v1/rewards", "/v1/rewards", who=other,
                   query={"next_token": page["next_token"]})
    assert crafted[0] == 400

    path = f"/v1/rewards/{ids[0]}"
    assert call(rewards_api, "DELETE", path, "/v1/rewards/{reward_id}")[0] == 204
    assert call(rewards_api, "GET", path, "/v1/rewards/{reward_id}")[0] == 404
    assert call(rewards_api, "DELETE", path, "/v1/rewards/{reward_id}")[0] == 404
    _, everything = call(rewards_api, "GET", "/v1/rewards", "/v1/rewards")
    assert ids[0] not in {r["reward_id"] for r in everything["items"]}
    reserve = {"reward_id": ids[0], "user_id": "u1", "quantity": 1, "expire_minutes": 5}
    assert call(rewards_api, "POST", "/v1/inventory/reserve", "/v1/inventory/reserve", body=reserve)[0] == 404


def test_a_page_token_is_signed_and_only_for_its_caller(rewards_api):
    # Given a page token handed to one admin
    for n in range(3):
        create(rewards_api, name=f"r{n}")
    _, page = call(rewards_api, "GET", "/v1/rewards", "/v1/rewards", query={"limit": "1"})
    token = page["next_token"]
    key, _, mac = token.partition(".")
    shown = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    assert "gsi1pk" not in shown  # the partition stays with the query
    assert call(rewards_api, "GET", "/v1/rewards", "/v1/rewards", query={"limit": "1", "next_token": token})[0] == 200

    # Then another admin of the same tenant, or the same admin with an altered key, gets a 400
    altered = base64.urlsafe_b64encode(json.dumps({**shown, "gsi1sk": "9999"}).encode()).decode().rstrip("=")
    for who, bad in ((claims(T, "ops-2", "[admin]"), token), (ADMIN, f"{altered}.{mac}")):
        status, error = call(rewards_api, "GET", "/v1/rewards", "/v1/rewards", who=who, query={"next_token": bad})
        assert status == 400 and error["error"]["details"] == [{"field": "next_token"}], error


def test_stock_moves_up_and_down_but_never_below_what_is_taken(rewards_api):
    reward = create(rewards_api, total_stock=3, per_user_limit=None)
    body = {"reward_id": reward["reward_id"], "user_id": "u1", "quantity": 2, "expire_minutes": 5,
            "reservation_id": "res-1"}
    first = call(rewards_api, "POST", "/v1/inventory/reserve", "/v1/inventory/reserve", who=SERVICE, body=body)
    again = call(rewards_api, "POST", "/v1/inventory/reserve", "/v1/inventory/reserve", who=SERVICE, body=body)
    assert (first[0], again[0], again[1]) == (201, 200, first[1])
    assert first[1]["status"] == "PENDING" and first[1]["expires_at"].endswith("Z")

    stock = f"/v1/rewards/{reward['reward_id']}/stock"
    status, error = call(rewards_api, "POST", stock, "/v1/rewards/{reward_id}/stock", body={"delta": -2})
    assert (status, error["error"]["code"]) == (409, "STOCK_FLOOR")
    assert call(rewards_api, "POST", stock, "/v1/rewards/{reward_id}/stock", body={"delta": -1})[1]["stock"] == \
        {"total": 2, "available": 0, "reserved": 2, "issued": 0}
    assert call(rewards_api, "POST", stock, "/v1/rewards/{reward_id}/stock", body={"delta": 0})[0] == 422
    assert call(rewards_api, "POST", stock, "/v1/rewards/{reward_id}/stock", who=SERVICE, body={"delta": 5})[0] == 403

    confirm = call(rewards_api, "POST", "/v1/inventory/res-1/confirm", "/v1/inventory/{reservation_id}/confirm",
                   who=SERVICE)
    assert confirm[1]["status"] == "CONFIRMED"
    cancel = call(rewards_api, "POST", "/v1/inventory/res-1/cancel", "/v1/inventory/{reservation_id}/cancel",
                  who=SERVICE)
    assert (cancel[0], cancel[1]["error"]["code"]) == (409, "RESERVATION_CLOSED")
    assert call(rewards_api, "POST", "/v1/inventory/nope/confirm", "/v1/inventory/{reservation_id}/confirm",
                who=SERVICE)[0] == 404
    _, listed = call(rewards_api, "GET", "/v1/inventory/reservations", "/v1/inventory/reservations", who=SERVICE,
                     query={"reward_id": reward["reward_id"], "status": "CONFIRMED"})
    assert [r["reservation_id"] for r in listed["items"]] == ["res-1"]
    assert call(rewards_api, "GET", "/v1/inventory/reservations", "/v1/inventory/reservations", who=ALICE,
                query={"reward_id": reward["reward_id"]})[0] == 403


def test_grants_are_listed_by_every_filter_and_change_only_along_legal_transitions(rewards_api):
    reward = create(rewards_api)
    api.create_grant(CALLER, grant_id="g1", reward_id=reward["reward_id"], user_id="alice", status="GENERATED",
                     task_id="task-1", campaign_id="c1")
    api.create_grant(CALLER, grant_id="g2", reward_id=reward["reward_id"], user_id="bob", status="PENDING",
                     task_id="task-2", campaign_id="c1")

    def listed(who=ADMIN, **query) -> list[str]:
        status, page = call(rewards_api, "GET", "/v1/reward-grants", "/v1/reward-grants", who=who, query=query)
        assert status == 200, page
        return sorted(g["grant_id"] for g in page["items"])

    assert listed(campaign_id="c1") == ["g1", "g2"]
    assert listed(task_id="task-2") == ["g2"] and listed(status="GENERATED") == ["g1"]
    assert listed(user_id="alice", reward_id=reward["reward_id"]) == ["g1"]
    assert listed(who=ALICE, user_id="alice") == ["g1"]
    assert call(rewards_api, "GET", "/v1/reward-grants", "/v1/reward-grants", who=ALICE)[0] == 403
    assert call(rewards_api, "GET", "/v1/reward-grants/g2", "/v1/reward-grants/{grant_id}", who=ALICE)[0] == 404
    assert call(rewards_api, "GET", "/v1/reward-grants/g1", "/v1/reward-grants/{grant_id}", who=ALICE)[0] == 200

    status_path = "/v1/reward-grants/{grant_id}/status"
    status, grant = call(rewards_api, "PUT", "/v1/reward-grants/g1/status", status_path,
                         body={"status": "DISTRIBUTED"})
    assert (status, grant["status"]) == (200, "DISTRIBUTED")
    status, grant = call(rewards_api, "PUT", "/v1/reward-grants/g1/status", status_path, body={"status": "USED"})
    assert (status, grant["status"]) == (200, "USED")
    status, error = call(rewards_api, "PUT", "/v1/reward-grants/g1/status", status_path, body={"status": "FAILED"})
    assert (status, error["error"]["code"]) == (409, "ILLEGAL_TRANSITION")
    rolled = call(rewards_api, "PUT", "/v1/reward-grants/g1/status", status_path, body={"status": "ROLLED_BACK"})
    assert rolled[0] == 422
    assert call(rewards_api, "PUT", "/v1/reward-grants/g2/status", status_path, who=ALICE,
                body={"status": "FAILED"})[0] == 403
    rollback = call(rewards_api, "POST", "/v1/reward-grants/g2/rollback", "/v1/reward-grants/{grant_id}/rollback")
    assert (rollback[0], rollback[1]["error"]["code"]) == (409, "ILLEGAL_TRANSITION")  # PENDING: nothing to give back


def test_issue_code_takes_an_unexported_batch_code_else_a_fresh_one_once_per_grant(rewards_api, stack):
    reward = create(rewards_api, reward_type="REDEEM_CODE", content={"description": "a VIP month"},
                    generator={"type": "redeem_code", "length": 10, "prefix": "GIFT"})
    redeem_api = Function("RedeemApiFunction", stack)
    seed_campaign()
    batch = body_of(redeem_api(http_event("POST", "/v1/campaigns/c1/redeem-codes",
                                          "/v1/campaigns/{campaign_id}/redeem-codes", claims_=ADMIN,
                                          body={"reward_id": reward["reward_id"], "count": 1})))
    for grant_id, user in (("g1", "alice"), ("g2", "bob")):  # codes are issued to delivered grants
        api.create_grant(CALLER, grant_id=grant_id, reward_id=reward["reward_id"], user_id=user, status="DISTRIBUTED")
    first = api.issue_code(CALLER, reward_id=reward["reward_id"], user_id="alice", campaign_id="c1", grant_id="g1")
    assert first["batch_id"] == batch["batch_id"]
    again = api.issue_code(CALLER, reward_id=reward["reward_id"], user_id="alice", campaign_id="c1", grant_id="g1")
    assert again == first
    fresh = api.issue_code(CALLER, reward_id=reward["reward_id"], user_id="bob", campaign_id="c1", grant_id="g2")
    assert fresh["batch_id"] is None and fresh["code"].startswith("GIFT-") and fresh["code"] != first["code"]

    # the batch's only code went to the grant: nothing is left to export, and only alice may redeem it
    export = redeem_api(http_event("POST", f"/v1/redeem-code-batches/{batch['batch_id']}/export",
                                   "/v1/redeem-code-batches/{batch_id}/export", body={}, claims_=ADMIN))
    assert body_of(export)["error"]["code"] == "NOTHING_TO_EXPORT"
    for code, owner, stranger in ((first["code"], "alice", "bob"), (fresh["code"], "bob", "alice")):
        refused = redeem_api(http_event("POST", "/v1/redeem", "/v1/redeem", body={"code": code, "user_id": stranger},
                                        claims_=SERVICE))
        assert refused["statusCode"] == 403
        redeemed = redeem_api(http_event("POST", "/v1/redeem", "/v1/redeem", body={"code": code, "user_id": owner},
                                         claims_=SERVICE))
        assert redeemed["statusCode"] == 200
        # the grant that issued the code is the one redeemed: one code, one use
        assert body_of(redeemed)["grant_id"] in ("g1", "g2") and body_of(redeemed)["status"] == "USED"
    with pytest.raises(Exception, match="REDEEM_CODE"):
        api.issue_code(CALLER, reward_id=create(rewards_api)["reward_id"], user_id="x", campaign_id=None, grant_id="g3")


def test_sample_events_run(rewards_api):
    assert rewards_api(sample_event("rewards_api/create_reward.json"))["statusCode"] == 201
    assert rewards_api(sample_event("rewards_api/get_reward.json"))["statusCode"] == 404
    assert rewards_api(sample_event("rewards_api/list_grants.json"))["statusCode"] == 200


def _shown(token: str | None) -> str:
    """What a page token lets its holder read: its signed key, decoded (and decompressed: a merged page's)."""
    if token is None:
        return ""
    key = token.partition(".")[0]
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    with contextlib.suppress(zlib.error):
        raw = zlib.decompress(raw)
    return raw.decode()


def test_a_users_own_listing_never_walks_or_names_another_users_items(rewards_api):
    # Given alice holds many grants and reservations of a reward, and mallory two of each, alice's the newest
    mallory = claims(T, "mallory", "[user]")
    reward_id = create(rewards_api, total_stock=100, per_user_limit=50)["reward_id"]
    for user, count in (("mallory", 2), ("alice", 5)):
        for n in range(count):
            api.create_grant(CALLER, grant_id=f"{user}-g{n}", reward_id=reward_id, user_id=user, status="PENDING")
            api.reserve(CALLER, reward_id=reward_id, user_id=user, quantity=1, expire_minutes=5,
                        reservation_id=f"{user}-r{n}")
    # When mallory pages through her own grants and reservations one at a time
    listings = (("/v1/reward-grants", {"user_id": "mallory"}, "grant_id"),
                ("/v1/inventory/reservations", {"reward_id": reward_id, "user_id": "mallory"}, "reservation_id"))
    for path, query, id_field in listings:
        seen, token = [], None
        for _ in range(4):
            status, page = call(rewards_api, "GET", path, path, who=mallory,
                                query={**query, "limit": "1", **({"next_token": token} if token else {})})
            assert status == 200, page
            seen += [item[id_field] for item in page["items"]]
            # Then no page and no token names one of alice's items
            assert "alice" not in _shown(page["next_token"]), _shown(page["next_token"])
            token = page["next_token"]
            if token is None:
                break
        assert sorted(seen) == [f"mallory-{id_field[0]}{n}" for n in range(2)]


def test_the_tenants_grants_merge_their_index_shards_newest_first_without_gap_or_repeat(rewards_api):
    # Given 23 grants spread over the grant index's shards, one in three USED
    reward_id = create(rewards_api)["reward_id"]
    for n in range(23):
        api.create_grant(CALLER, grant_id=f"g{n:02d}", reward_id=reward_id, user_id=f"u{n % 4}",
                         status="USED" if n % 3 == 0 else "PENDING")
    shards = {dal.grant_item("t1#A#app1", {"grant_id": f"g{n:02d}", "created_at": "x", "user_id": "u"})["gsi1pk"]
              for n in range(23)}
    assert len(shards) > 4
    expected = [g["grant_id"] for g in sorted(
        (dal.get_grant("t1#A#app1", f"g{n:02d}") for n in range(23)),
        key=lambda g: (g["created_at"], g["grant_id"]), reverse=True)]
    # When the admin pages through all of them, and through the USED ones, 4 at a time
    for query, want in (({}, expected), ({"status": "USED"}, [g for g in expected if int(g[1:]) % 3 == 0])):
        seen, token = [], None
        for _ in range(30):
            status, page = call(rewards_api, "GET", "/v1/reward-grants", "/v1/reward-grants",
                                query={**query, "limit": "4", **({"next_token": token} if token else {})})
            assert status == 200 and len(page["items"]) <= 4, page
            seen += [g["grant_id"] for g in page["items"]]
            token = page["next_token"]
            if token is None:
                break
        # Then every grant comes once, newest first
        assert seen == want
    # And a token is signed: altered, it is a 400 naming next_token
    _, page = call(rewards_api, "GET", "/v1/reward-grants", "/v1/reward-grants", query={"limit": "2"})
    key, _, mac = page["next_token"].partition(".")
    altered = base64.urlsafe_b64encode(_shown(page["next_token"]).replace("g", "h").encode()).decode().rstrip("=")
    status, error = call(rewards_api, "GET", "/v1/reward-grants", "/v1/reward-grants",
                         query={"limit": "2", "next_token": f"{altered}.{mac}"})
    assert status == 400 and error["error"]["details"] == [{"field": "next_token"}], error
