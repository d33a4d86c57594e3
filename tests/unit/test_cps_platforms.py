"""Webhook signatures and platform adapters."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from marketing.cps import signing
from marketing.cps.adapters import FakeAdapter, JsonAdapter, adapter_for, configured_sources

BODY = b'{"order_id":"o-1"}'


def test_signature_is_hmac_sha256_over_timestamp_dot_body_with_the_key_of_the_url():
    import hashlib
    import hmac

    key = hmac.new(b"local-webhook-secret", b"cps-webhook/t1/app1/fake", hashlib.sha256).hexdigest()
    expected = hmac.new(key.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.signed_headers("t1", "app1", "fake", BODY, timestamp=1700000000) == {
        "X-Timestamp": "1700000000", "X-Signature": expected}


@pytest.mark.parametrize("url", [("t2", "app1", "fake"), ("t1", "app2", "fake"), ("t1", "app1", "meituan"),
                                 ("t1", "app1:fake", "fake"), ("t1:app1", "fake", "fake")])
def test_a_signature_verifies_only_for_the_tenant_app_and_platform_it_was_made_for(url):
    # Every platform has the same secret here (the local default): the key alone binds the URL.
    headers = signing.signed_headers("t1", "app1", "fake", BODY, timestamp=1_700_000_000)
    stamp, signature = headers["X-Timestamp"], headers["X-Signature"]
    assert signing.verify("t1", "app1", "fake", BODY, stamp, signature, now=1_700_000_000)
    assert not signing.verify(*url, BODY, stamp, signature, now=1_700_000_000)


@pytest.mark.parametrize(("skew", "ok"), [(0, True), (299, True), (-299, True), (301, False), (-301, False)])
def test_timestamps_are_accepted_within_five_minutes(skew, ok):
    now = 1_700_000_000
    headers = signing.signed_headers("t1", "app1", "fake", BODY, timestamp=now + skew)
    assert signing.verify("t1", "app1", "fake", BODY, headers["X-Timestamp"], headers["X-Signature"], now=now) is ok


def test_a_platform_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("CPS_WEBHOOK_SECRET_MEITUAN", "from-env")
    headers = signing.signed_headers("t1", "app1", "meituan", BODY, secret="from-env")
    assert signing.verify("t1", "app1", "meituan", BODY, headers["X-Timestamp"], headers["X-Signature"])
    assert not signing.verify("t1", "app1", "meituan", BODY, headers["X-Timestamp"], "not-hex")
    assert not signing.verify("t1", "app1", "meituan", BODY, "12.5", headers["X-Signature"])


class _Platform(BaseHTTPRequestHandler):
    """A CPS platform's order list: two pages, its own field names."""

    pages = {None: {"orders": [{"orderNo": "a", "status": "PAID"}], "next_cursor": "p2"},
             "p2": {"orders": [{"orderNo": "b", "status": "SETTLED"}]}}
    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        query = parse_qs(urlparse(self.path).query)
        _Platform.seen.append({"query": query, "auth": self.headers.get("Authorization")})
        body = json.dumps(self.pages[query.get("cursor", [None])[0]]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_json_adapter_follows_cursors_and_renames_fields():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        adapter = adapter_for({"adapter": "json", "url": f"http://127.0.0.1:{server.server_port}/orders",
                               "fields": {"order_id": "orderNo"}, "token": "tok"})
        assert isinstance(adapter, JsonAdapter)
        since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        orders = list(adapter.fetch(since, until))
    finally:
        server.shutdown()
    assert [(o["order_id"], o["status"]) for o in orders] == [("a", "PAID"), ("b", "SETTLED")]
    assert _Platform.seen[0]["query"]["since"] == ["2026-01-01T00:00:00.000Z"]
    assert _Platform.seen[1]["query"]["cursor"] == ["p2"] and _Platform.seen[1]["auth"] == "Bearer tok"


def test_the_fake_adapter_and_configured_sources(monkeypatch):
    assert isinstance(adapter_for({"adapter": "fake"}), FakeAdapter)
    with pytest.raises(ValueError):
        adapter_for({"adapter": "ftp"})
    monkeypatch.delenv("CPS_PULL_SOURCES", raising=False)
    assert configured_sources() == []
    source = {"tenant_id": "t1", "app_id": "app1", "platform": "fake", "adapter": "fake"}
    monkeypatch.setenv("CPS_PULL_SOURCES", json.dumps([source]))
    assert configured_sources()[0]["platform"] == "fake"
