"""CPS order ingestion on moto: signed webhooks, the scheduled pull, the ledger and its queries, events."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from contextlib import contextmanager

import boto3
import pytest

from marketing.core import dynamo
from marketing.cps import signing
from marketing.cps.signing import signed_headers
from tests.support import Function, body_of, bus_tap, claims, http_event, sample_event

ADMIN = claims("t1", "ops", "[admin]")
ROUTE = "/v1/cps/{tenant_id}/{app_id}/{platform}/orders"
SOURCE = {"tenant_id": "t1", "app_id": "app1", "platform": "fake", "adapter": "fake"}  # a pull source of app1
LONG_AGO = "2020-01-01T00:00:00Z"  # settled so long ago that the hold is over


@pytest.fixture
def fns(stack):
    return {"api": Function("CpsApiFunction", stack), "hook": Function("CpsWebhookFunction", stack),
            "pull": Function("CpsPullFunction", stack)}


def make_chain(fns, tenant="t1", app="app1"):
    """The article's chain: A invites B, B invites C. Returns C's pid."""
    code = None
    for user in "ABC":
        body = {"user_id": user, **({"invite_code": code} if code else {})}
        affiliate = body_of(fns["api"](http_event("POST", "/v1/affiliates", "/v1/affiliates", body=body,
                                                  claims_=claims(tenant, "ops", "[admin]", app))))
        code = affiliate["invite_code"]
    return affiliate["pid"]


@pytest.fixture
def abc(fns):
    return make_chain(fns)


def order(pid, status="PAID", order_id="o-1", **more):
    return {"order_id": order_id, "status": status, "pid": pid, "pay_price": 5000, "commission": 1000,
            "refund_price": 0, "title": "Lunch set", "paid_at": "2026-11-23T12:00:00Z", **more}


def webhook(fns, body, *, tenant="t1", app="app1", platform="fake", headers=None):
    raw = body if isinstance(body, str) else json.dumps(body)
    if headers is None:
        headers = signed_headers(tenant, app, platform, raw.encode())
    return fns["hook"](http_event("POST", f"/v1/cps/{tenant}/{app}/{platform}/orders", ROUTE, body=raw,
                                  headers=headers))


def earnings(fns, user, tenant="t1", app="app1"):
    return body_of(fns["api"](http_event("GET", f"/v1/affiliates/{user}/earnings", "/v1/affiliates/{user_id}/earnings",
                                         claims_=claims(tenant, "ops", "[admin]", app))))


def balances(fns, tenant="t1", app="app1"):
    return {u: {k: v for k, v in earnings(fns, u, tenant, app).items() if k != "user_id"} for u in "ABC"}


def entries(stack, tenant="t1", app="app1") -> list[tuple]:
    items = boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]
    return sorted((i["user_id"], i["kind"], int(i["amount"])) for i in items
                  if i["sk"].startswith("CPSL#") and i["pk"].startswith(f"T#{tenant}#A#{app}#"))


def test_the_articles_example(fns, abc):
    answer = webhook(fns, order(abc))
    assert answer["statusCode"] == 200
    assert body_of(answer) == {"platform": "fake", "order_id": "o-1", "status": "PAID", "changed": True,
                               "entries": 3}
    assert {u: b["pending"] for u, b in balances(fns).items()} == {"C": 600, "B": 200, "A": 100}
    assert earnings(fns, "A")["by_level"] == {"2": 100}
    listed = body_of(fns["api"](http_event("GET", "/v1/affiliates/A/commissions",
                                           "/v1/affiliates/{user_id}/commissions", claims_=ADMIN)))["items"]
    assert [(e["order_id"], e["level"], e["order_user_id"], e["amount"], e["status"]) for e in listed] == [
        ("o-1", 2, "C", 100, "pending")]


def test_the_same_webhook_five_times_and_a_pull_make_one_set_of_entries(fns, abc, stack):
    for _ in range(5):
        assert webhook(fns, order(abc))["statusCode"] == 200
    pulled = fns["pull"]({**SOURCE, "orders": [order(abc)]})
    assert pulled["results"][0] == {"tenant_id": "t1", "app_id": "app1", "platform": "fake", "pulled": 1,
                                    "changed": 1, "rejected": 0}  # changed: the order is now known to the pull too
    again = fns["pull"]({**SOURCE, "orders": [order(abc)]})
    assert again["results"][0]["changed"] == 0
    assert entries(stack) == [("A", "accrual", 100), ("B", "accrual", 200), ("C", "accrual", 600)]
    recon = body_of(fns["api"](sample_event("cps_api/get_reconciliation.json")))
    assert recon == {"date": "2026-11-23", "platform": "fake", "orders": 1, "both": 1, "webhook_only": [],
                     "pull_only": []}


def test_refund_after_settlement_adds_reversals_and_balances_add_up(fns, abc, stack):
    webhook(fns, order(abc))
    webhook(fns, order(abc, "SETTLED", settled_at=LONG_AGO))
    assert balances(fns)["C"] == {"pending": 0, "available": 600, "reversed": 0, "withheld": 0, "by_level": {"0": 600}}
    webhook(fns, order(abc, "PARTIALLY_REFUNDED", refund_price=1250, settled_at=LONG_AGO))
    assert balances(fns)["C"] == {"pending": 0, "available": 450, "reversed": 150, "withheld": 0,
                                  "by_level": {"0": 450}}
    webhook(fns, order(abc, "REFUNDED", refund_price=5000))
    after = balances(fns)
    assert after == {u: {"pending": 0, "available": 0, "reversed": share, "withheld": 0, "by_level": {level: 0}}
                     for u, share, level in (("A", 100, "2"), ("B", 200, "1"), ("C", 600, "0"))}
    kinds = [k for u, k, _ in entries(stack) if u == "B"]
    assert sorted(kinds) == ["accrual", "reversal", "reversal", "settlement"]
    state = body_of(fns["api"](http_event("GET", "/v1/cps/orders/fake/o-1", "/v1/cps/orders/{platform}/{order_id}",
                                          claims_=ADMIN)))
    assert state["status"] == "REFUNDED" and state["refund_price"] == 5000 and state["promoter_id"] == "C"


def test_settled_money_waits_for_the_hold(fns, abc):
    webhook(fns, order(abc))
    webhook(fns, order(abc, "SETTLED"))  # settled now: a 7-day hold
    c = earnings(fns, "C")
    assert (c["pending"], c["available"]) == (600, 0)
    available = body_of(fns["api"](http_event("GET", "/v1/affiliates/C/commissions",
                                              "/v1/affiliates/{user_id}/commissions", query={"status": "available"},
                                              claims_=ADMIN)))["items"]
    assert [(e["kind"], e["amount"]) for e in available] == [("settlement", 600)]
    assert available[0]["available_at"] > available[0]["recorded_at"]


def test_out_of_order_ends_where_in_order_ends(fns, abc, stack):
    # Given the same chain in two tenants
    pid_t2 = make_chain(fns, "t2")
    # When t1 hears REFUNDED before PAID, and t2 hears them in order
    webhook(fns, order(abc, "REFUNDED", refund_price=5000))
    assert body_of(webhook(fns, order(abc, "PAID")))["changed"] is False
    webhook(fns, order(pid_t2, "PAID"), tenant="t2")
    webhook(fns, order(pid_t2, "REFUNDED", refund_price=5000), tenant="t2")
    # Then balances, ledger entries and the order end the same
    assert balances(fns) == balances(fns, "t2")
    assert balances(fns)["C"] == {"pending": 0, "available": 0, "reversed": 600, "withheld": 0, "by_level": {"0": 0}}
    assert entries(stack) == entries(stack, "t2") and len(entries(stack)) == 6

    def state(tenant):
        answer = fns["api"](http_event("GET", "/v1/cps/orders/fake/o-1", "/v1/cps/orders/{platform}/{order_id}",
                                       claims_=claims(tenant, "ops", "[admin]")))
        return {k: v for k, v in body_of(answer).items() if k not in ("pid", "updated_at")}

    assert state("t1") == state("t2") and state("t1")["status"] == "REFUNDED"
    # And an older status arriving late neither moves the status back nor adds entries
    late = body_of(webhook(fns, order(abc, "SETTLED")))
    assert (late["status"], late["entries"]) == ("REFUNDED", 0)


@pytest.mark.parametrize("headers", [
    {},
    {"X-Timestamp": str(int(time.time()))},
    {"X-Timestamp": str(int(time.time())), "X-Signature": "0" * 64},
    "stale", "other-tenant", "other-app", "other-platform", "other-secret", "tampered",
    {"X-Timestamp": "1" * 5000, "X-Signature": "0" * 64},            # int() refuses 5,000 digits
    {"X-Timestamp": "\u00b2", "X-Signature": "0" * 64},               # a digit to isdigit(), not to int()
    "non-ascii-signature",
])
def test_unsigned_wrong_and_stale_webhooks_are_401_and_store_nothing(fns, stack, headers):
    body = order("ANYPID")
    raw = json.dumps(body).encode()
    if headers == "stale":
        headers = signed_headers("t1", "app1", "fake", raw, timestamp=int(time.time()) - 301)
    elif headers == "other-tenant":
        headers = signed_headers("t2", "app1", "fake", raw)
    elif headers == "other-app":
        headers = signed_headers("t1", "app2", "fake", raw)
    elif headers == "other-platform":  # locally every platform has the same secret: only the key tells them apart
        headers = signed_headers("t1", "app1", "meituan", raw)
    elif headers == "other-secret":
        headers = signed_headers("t1", "app1", "fake", raw, secret="guessed")
    elif headers == "non-ascii-signature":
        headers = {**signed_headers("t1", "app1", "fake", raw), "X-Signature": "\u00e9" * 64}
    elif headers == "tampered":
        headers = signed_headers("t1", "app1", "fake", json.dumps({**body, "commission": 9}).encode())
    answer = webhook(fns, raw.decode(), headers=headers)
    assert answer["statusCode"] == 401
    assert body_of(answer)["error"]["code"] == "UNAUTHORIZED"
    assert boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"] == []


def test_a_base64_body_is_checked_over_its_bytes_and_never_a_500(fns, stack):
    # Given a body that is not UTF-8, sent base64-encoded as API Gateway does for binary payloads
    raw = b"\xff\xfe not utf-8"
    event = http_event("POST", "/v1/cps/t1/app1/fake/orders", ROUTE, body="x",
                       headers=signed_headers("t1", "app1", "fake", raw))
    event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    # Then its signature verifies over the bytes, and the body is refused as invalid, not as a crash
    answer = fns["hook"](event)
    assert answer["statusCode"] == 422
    assert boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"] == []


def test_a_signed_but_invalid_body_names_the_field(fns, stack):
    answer = webhook(fns, {"order_id": "o-9", "status": "SHIPPED", "pid": "p", "pay_price": -1, "commission": 1})
    assert answer["statusCode"] == 422
    fields = {d["field"] for d in body_of(answer)["error"]["details"]}
    assert {"body.status", "body.pay_price"} <= fields
    assert boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"] == []
    assert webhook(fns, "{not json")["statusCode"] == 422


def test_the_sample_event_is_signed_for_the_local_secret(fns):
    event = sample_event("cps_webhook/order_paid.json")
    assert fns["hook"](event)["statusCode"] == 401  # its timestamp is long stale: replays are refused
    signed = signed_headers("t1", "app1", "fake", event["body"].encode())
    event["headers"].update({k.lower(): v for k, v in signed.items()})
    assert fns["hook"](event)["statusCode"] == 200


def test_unknown_pid_is_stored_without_commission(fns, stack):
    assert body_of(webhook(fns, order("NOBODY")))["entries"] == 0
    state = body_of(fns["api"](sample_event("cps_api/get_order.json")))
    assert state["status"] == "PAID" and state["promoter_id"] is None and state["shares"] == []


def test_orders_publish_paid_and_refunded_events_once_per_fact(fns, abc, stack):
    read_bus = bus_tap(stack, {"source": ["marketing.cps"]})

    webhook(fns, order(abc))
    webhook(fns, order(abc))
    webhook(fns, order(abc, "REFUNDED", refund_price=5000))

    delivered = read_bus()
    assert sorted(e["detail-type"] for e in delivered) == ["cps.order_paid", "cps.order_refunded"]
    paid = next(e["detail"] for e in delivered if e["detail-type"] == "cps.order_paid")
    assert {k: paid[k] for k in ("tenant_id", "app_id", "platform", "order_id", "pid", "promoter_id",
                                 "commission")} == {"tenant_id": "t1", "app_id": "app1", "platform": "fake",
                                                    "order_id": "o-1", "pid": abc, "promoter_id": "C",
                                                    "commission": 1000}
    refunded = next(e["detail"] for e in delivered if e["detail-type"] == "cps.order_refunded")
    assert refunded["refund_price"] == 5000 and refunded["event_id"] != paid["event_id"]


def test_pull_rejects_unreadable_orders_and_goes_on(fns, abc):
    result = fns["pull"]({"sources": [{"tenant_id": "t1", "app_id": "app1", "platform": "fake", "adapter": "fake",
                                       "orders": [{"order_id": "broken"}, order(abc, order_id="fine")]}]})
    assert result["results"][0]["rejected"] == 1 and result["results"][0]["changed"] == 1
    assert fns["pull"](sample_event("cps_pull/scheduled.json")) == {"results": []}  # nothing configured locally
    with pytest.raises(RuntimeError):
        fns["pull"]({**SOURCE, "adapter": "carrier-pigeon"})


def test_reconciliation_shows_orders_only_one_path_saw(fns, abc):
    webhook(fns, order(abc, order_id="hooked"))
    fns["pull"]({**SOURCE, "orders": [order(abc, order_id="pulled")]})
    recon = body_of(fns["api"](sample_event("cps_api/get_reconciliation.json")))
    assert (recon["orders"], recon["both"], recon["webhook_only"], recon["pull_only"]) == (2, 0, ["hooked"],
                                                                                          ["pulled"])
    bad = fns["api"](http_event("GET", "/v1/cps/reconciliation", "/v1/cps/reconciliation", query={"date": "23.11."},
                                claims_=ADMIN))
    assert bad["statusCode"] == 422


@contextmanager
def dynamodb_calls(page_size: int | None = None):
    """Counts our DynamoDB client's requests, the items GetItems and BatchGetItems ask for by sort key (`ORDER`,
    `SETTINGS`, `PID`...) and the items Queries read; `page_size` makes Queries page."""
    seen: Counter = Counter()

    def asked(model, params, **_):
        seen[model.name] += 1
        if model.name == "GetItem":
            seen[params["Key"]["sk"]] += 1
        if model.name == "BatchGetItem":
            seen.update(key["sk"] for table in params["RequestItems"].values() for key in table["Keys"])

    def paged(model, params, **_):  # boto3 copies the params after provide-client-params: change its copy
        if page_size and model.name == "Query":
            params["Limit"] = page_size

    def answered(parsed, model, **_):
        seen["items read"] += parsed.get("ScannedCount", 0) if model.name == "Query" else 0

    events = dynamo.client().meta.events
    events.register("provide-client-params.dynamodb", asked)
    events.register("before-parameter-build.dynamodb", paged)
    events.register("after-call.dynamodb", answered)
    try:
        yield seen
    finally:
        events.unregister("provide-client-params.dynamodb", asked)
        events.unregister("before-parameter-build.dynamodb", paged)
        events.unregister("after-call.dynamodb", answered)


def test_reconciliation_of_one_platform_reads_only_its_orders_across_pages(fns, abc):
    # Given one day's orders on `fake` and on platforms whose keys share its first letters
    for n in range(3):
        webhook(fns, order(abc, order_id=f"f{n}"))
    fns["pull"]({**SOURCE, "orders": [order(abc, order_id="f0")]})
    for platform in ("fa", "fake_b", "eleme"):
        webhook(fns, order(abc, order_id=f"{platform}-1"), platform=platform)

    def recon(platform=None):
        query = {"date": "2026-11-23", **({"platform": platform} if platform else {})}
        answer = fns["api"](http_event("GET", "/v1/cps/reconciliation", "/v1/cps/reconciliation", query=query,
                                       claims_=ADMIN))
        return {k: v for k, v in body_of(answer).items() if k not in ("date", "platform")}

    # When it is reconciled per platform, in pages of two orders
    with dynamodb_calls(page_size=2) as calls:
        fake = recon("fake")
    # Then DynamoDB reads only that platform's three orders, and every page of them is answered
    assert fake == {"orders": 3, "both": 1, "webhook_only": ["f1", "f2"], "pull_only": []}
    assert (calls["items read"], calls["Query"]) == (3, 2)
    with dynamodb_calls(page_size=2):
        assert recon("fa") == {"orders": 1, "both": 0, "webhook_only": ["fa-1"], "pull_only": []}
        assert recon("fake_b")["webhook_only"] == ["fake_b-1"]
        assert recon()["webhook_only"] == ["eleme/eleme-1", "fa/fa-1", "fake/f1", "fake/f2", "fake_b/fake_b-1"]


def test_a_save_lost_to_a_concurrent_writer_reads_the_order_again_but_not_the_settings_or_the_pid(fns, abc, stack):
    # Given a pull that stores the order (CREATED) just before the webhook's PAID update saves it
    raced: dict = {}

    def pull_first(**_):
        if not raced:  # once: the pull's own save comes through here too
            raced["pull"] = None
            raced["pull"] = fns["pull"]({"tenant_id": "t1", "app_id": "app1", "platform": "fake", "adapter": "fake",
                                         "orders": [order(abc, "CREATED")]})

    events = dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", pull_first)
    try:
        with dynamodb_calls() as calls:
            answer = webhook(fns, order(abc))
    finally:
        events.unregister("provide-client-params.dynamodb.TransactWriteItems", pull_first)
    # Then the webhook's save fails on the order's condition, and it merges again on top of the pull's order
    assert raced["pull"]["results"][0]["changed"] == 1
    assert body_of(answer) == {"platform": "fake", "order_id": "o-1", "status": "PAID", "changed": True, "entries": 3}
    assert calls["TransactWriteItems"] == 3 and calls["ORDER"] == 3  # the webhook's two tries, the pull's one
    # And only the order is read again: the tenant's settings and the pid's owner are read once, together;
    # the statuses of the affiliates paid are read on each try (the save checks them)
    assert (calls["SETTINGS"], calls["PID"]) == (1, 1)
    assert (calls["GetItem"], calls["BatchGetItem"]) == (3, 3)
    assert entries(stack) == [("A", "accrual", 100), ("B", "accrual", 200), ("C", "accrual", 600)]
    state = body_of(fns["api"](sample_event("cps_api/get_order.json")))
    assert (state["status"], state["via_webhook"], state["via_pull"]) == ("PAID", True, True)


def test_in_lambda_the_secret_comes_from_secrets_manager(fns, abc, monkeypatch):
    # Given the function runs in Lambda, where no default secret exists
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cps-webhook")
    body = json.dumps(order(abc)).encode()
    local = signed_headers("t1", "app1", "fake", body, secret="local-webhook-secret")
    assert webhook(fns, body.decode(), headers=local)["statusCode"] == 401
    # When the platform's secret is stored under the stage's prefix, then webhooks signed with it pass
    prefix = fns["hook"].spec.environment["CPS_WEBHOOK_SECRET_PREFIX"]
    boto3.client("secretsmanager").create_secret(Name=f"{prefix}meituan", SecretString="s3cret")
    ok = webhook(fns, body.decode(), platform="meituan",
                 headers=signed_headers("t1", "app1", "meituan", body, secret="s3cret"))
    assert ok["statusCode"] == 200


def test_webhooks_of_a_platform_without_a_secret_ask_secrets_manager_once_a_minute(fns, abc, monkeypatch):
    # Given the function runs in Lambda and no secret is stored for `meituan`
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cps-webhook")
    asked: list[str] = []
    signing._secrets().client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue",
                                                   lambda params, **_: asked.append(params["SecretId"]))
    body = json.dumps(order(abc))

    def send():
        return webhook(fns, body, platform="meituan",
                       headers=signed_headers("t1", "app1", "meituan", body.encode(), secret="s3cret"))

    # When a flood of webhooks names it
    refused = [send() for _ in range(5)]
    # Then every one is refused as before, and Secrets Manager is asked once
    assert {(a["statusCode"], body_of(a)["error"]["code"]) for a in refused} == {(401, "UNAUTHORIZED")}
    assert len(asked) == 1
    # And a secret stored meanwhile is asked for again once the miss is a minute old, then kept
    prefix = fns["hook"].spec.environment["CPS_WEBHOOK_SECRET_PREFIX"]
    boto3.client("secretsmanager").create_secret(Name=f"{prefix}meituan", SecretString="s3cret")
    assert send()["statusCode"] == 401 and len(asked) == 1
    later = time.monotonic() + signing.MISSING_SECRET_TTL + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert [send()["statusCode"] for _ in range(3)] == [200, 200, 200]
    assert asked == [f"{prefix}meituan"] * 2


def test_in_lambda_the_scheduled_pull_reads_its_sources_from_secrets_manager(fns, abc, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cps-pull")
    name = fns["pull"].spec.environment["CPS_PULL_SOURCES_SECRET"]
    sources = [{**SOURCE, "orders": [order(abc)]}]
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(sources))
    result = fns["pull"](sample_event("cps_pull/scheduled.json"))
    assert result["results"] == [{"tenant_id": "t1", "app_id": "app1", "platform": "fake", "pulled": 1, "changed": 1,
                                  "rejected": 0}]
    assert earnings(fns, "C")["pending"] == 600


@pytest.mark.parametrize(("tenant", "app", "platform"), [
    ("t1", "app1", "meituan"),  # issue #10: another platform's URL (locally every platform shares one secret)
    ("t1", "app2", "fake"),     # another app of the same tenant
    ("t2", "app1", "fake"),     # another tenant
])
def test_a_signed_webhook_replayed_to_another_url_is_refused_and_pays_nothing(fns, abc, tenant, app, platform):
    # Given the same chain everywhere, and a webhook the platform signed for t1/app1/fake, accepted there
    make_chain(fns, tenant, app)
    raw = json.dumps(order(abc)).encode()
    headers = signed_headers("t1", "app1", "fake", raw)
    assert body_of(webhook(fns, raw.decode(), headers=headers))["changed"] is True
    paid = balances(fns)
    # When the same bytes and headers are sent to another URL
    replayed = webhook(fns, raw.decode(), tenant=tenant, app=app, platform=platform, headers=headers)
    # Then it is refused, and nobody earns anything more, there or here
    assert (replayed["statusCode"], body_of(replayed)["error"]["code"]) == (401, "UNAUTHORIZED")
    assert balances(fns) == paid and balances(fns)["C"]["pending"] == 600
    if (tenant, app) != ("t1", "app1"):
        assert all(b["pending"] == 0 for b in balances(fns, tenant, app).values())


def test_orders_and_pulls_act_in_their_app_only(fns, abc):
    # Given app2 of the same tenant with a chain of its own, and an order of app1's pid sent to app2
    pid_app2 = make_chain(fns, "t1", "app2")
    assert body_of(webhook(fns, order(abc), app="app2"))["entries"] == 0  # app1's pid is nobody in app2
    # When app2's platform account pulls its own order
    fns["pull"]({"tenant_id": "t1", "app_id": "app2", "platform": "fake", "adapter": "fake",
                 "orders": [order(pid_app2, order_id="o-2")]})
    # Then app2's chain earns from its order, app1's chain from nothing, and each app sees only its orders
    assert balances(fns, "t1", "app2")["C"]["pending"] == 600
    assert all(b["pending"] == 0 for b in balances(fns).values())

    def order_status(app, order_id):
        return fns["api"](http_event("GET", f"/v1/cps/orders/fake/{order_id}", "/v1/cps/orders/{platform}/{order_id}",
                                     claims_=claims("t1", "ops", "[admin]", app)))["statusCode"]

    seen = [order_status(app, o) for app, o in (("app2", "o-1"), ("app2", "o-2"), ("app1", "o-1"), ("app1", "o-2"))]
    assert seen == [200, 200, 404, 404]
