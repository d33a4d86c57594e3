"""Outbound URLs (core.outbound): https only, public addresses only, checked again when called, connected to the
address that was checked. The resolver is patched where a test needs a name to answer: it is the OS's."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from marketing.core import outbound
from marketing.core.outbound import UnsafeDestination

REAL_GETADDRINFO = socket.getaddrinfo


def resolving(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Make `socket.getaddrinfo` answer `answers[name]` (a list per call, the last one repeated); answers the
    names looked up, in order."""
    asked: list[str] = []

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        asked.append(host)
        address = answers[host][min(len(asked) - 1, len(answers[host]) - 1)]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


@pytest.mark.parametrize(("url", "why"), [
    ("http://hooks.example.com/grant", "https"),
    ("https://127.0.0.1/h", "loopback"),
    ("https://127.1.2.3:8443/h", "loopback"),
    ("https://10.0.0.7/h", "private"),
    ("https://172.16.0.1/h", "private"),
    ("https://192.168.1.1/h", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://100.64.0.1/h", "carrier-grade NAT"),
    ("https://224.0.0.1/h", "multicast"),
    ("https://0.0.0.0/h", "unspecified"),
    ("https://240.0.0.1/h", "private"),           # reserved (Python lists 240.0.0.0/4 among private networks)
    ("https://2130706433/h", "single-label"),     # 127.0.0.1 written as one number
    ("https://0x7f.1/h", "loopback"),             # and in hexadecimal parts: judged by what it resolves to
    ("https://[::1]/h", "loopback"),
    ("https://[fc00::1]/h", "private"),
    ("https://[fd12:3456::1]/h", "private"),
    ("https://[fe80::1]/h", "link-local"),
    ("https://[ff02::1]/h", "multicast"),
    ("https://[::]/h", "unspecified"),
    ("https://[::ffff:127.0.0.1]/h", "loopback"),  # IPv4-mapped
    ("https://[::ffff:169.254.169.254]/h", "link-local"),
    ("https://[64:ff9b::a00:1]/h", "private"),      # NAT64 of 10.0.0.1
    ("https://[2002:a00:1::1]/h", "private"),       # 6to4 of 10.0.0.1
    ("https://localhost/h", "loopback name"),
    ("https://app.localhost/h", "loopback name"),
    ("https://metadata.google.internal/computeMetadata/v1/", "internal"),
    ("https://METADATA.google.internal./x", "internal"),
    ("https://metadata/x", "internal"),
    ("https://intranet/x", "single-label"),
])
def test_a_url_into_a_private_network_is_refused_when_configured(url, why):
    with pytest.raises(UnsafeDestination) as refused:
        outbound.destination(url, configuring=True)
    assert why in str(refused.value)


@pytest.mark.parametrize("url", ["https://93.184.215.14/h", "https://[2606:4700::1111]:8443/h?x=1"])
def test_a_public_address_is_accepted(url):
    checked = outbound.destination(url, configuring=True)
    assert checked.scheme == "https" and len(checked.addresses) == 1


def test_a_name_is_judged_by_every_address_it_resolves_to(monkeypatch):
    resolving(monkeypatch, {"public.example.com": ["93.184.215.14"], "sneaky.example.com": ["10.1.2.3"]})
    assert outbound.destination("https://public.example.com/h").addresses == ("93.184.215.14",)
    with pytest.raises(UnsafeDestination, match=r"sneaky\.example\.com resolves to 10\.1\.2\.3, a private"):
        outbound.destination("https://sneaky.example.com/h", configuring=True)


def test_a_name_that_does_not_resolve_is_accepted_when_configured_but_not_called(monkeypatch):
    def nowhere(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    assert outbound.destination("https://not-yet.example.com/h", configuring=True).addresses == ()
    with pytest.raises(OSError, match="does not resolve"):  # worth a retry: DNS may answer later
        outbound.post("https://not-yet.example.com/h", b"{}", {}, timeout=1)


def test_the_local_escape_hatch_allows_loopback_only_and_never_in_lambda(monkeypatch):
    monkeypatch.setenv("LOCAL_ALLOW_LOOPBACK_WEBHOOKS", "1")
    assert outbound.destination("http://127.0.0.1:8080/hook", configuring=True).port == 8080
    assert outbound.destination("https://localhost/hook", configuring=True)
    with pytest.raises(UnsafeDestination):
        outbound.destination("http://10.0.0.1/hook", configuring=True)
    with pytest.raises(UnsafeDestination):
        outbound.destination("https://169.254.169.254/", configuring=True)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "GrantWorker")
    with pytest.raises(UnsafeDestination):
        outbound.destination("https://127.0.0.1/hook", configuring=True)


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request's Host header and answers `status`."""

    def __init__(self, status: int = 204, location: str | None = None):
        receiver, self.hosts = self, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hosts.append(self.headers["Host"])
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.end_headers()

            do_GET = do_POST  # noqa: N815 (a followed redirect would arrive as a GET)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_the_request_goes_to_the_checked_address_with_the_original_host(monkeypatch):
    # Given a name that resolves to this machine (allowed by the local escape hatch)
    monkeypatch.setenv("LOCAL_ALLOW_LOOPBACK_WEBHOOKS", "1")
    receiver = Receiver()
    asked = resolving(monkeypatch, {"hooks.test.example": ["127.0.0.1"]})
    try:
        # When a webhook is posted to it
        status = outbound.post(f"http://hooks.test.example:{receiver.port}/grant", b"{}", {}, timeout=5)
    finally:
        receiver.close()
    # Then the name was resolved once (no second lookup between check and connect), and the Host is the name
    assert status == 204 and asked == ["hooks.test.example"]
    assert receiver.hosts == [f"hooks.test.example:{receiver.port}"]


def test_a_name_rebound_to_a_private_address_is_refused_before_connecting(monkeypatch):
    resolving(monkeypatch, {"rebind.example.com": ["93.184.215.14", "127.0.0.1"]})
    assert outbound.destination("https://rebind.example.com/h", configuring=True)  # public when configured
    connected = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a) or pytest.fail("connected"))
    with pytest.raises(UnsafeDestination, match=r"127\.0\.0\.1, a loopback address"):
        outbound.post("https://rebind.example.com/h", b"{}", {}, timeout=1)
    assert connected == []


def test_a_redirect_is_not_followed(monkeypatch):
    # Given a receiver that redirects to another server on this machine (the hatch lets both be reached)
    monkeypatch.setenv("LOCAL_ALLOW_LOOPBACK_WEBHOOKS", "1")
    inside = Receiver()
    redirecting = Receiver(status=302, location=f"http://127.0.0.1:{inside.port}/admin")
    try:
        status = outbound.post(f"http://127.0.0.1:{redirecting.port}/hook", b"{}", {}, timeout=5)
    finally:
        redirecting.close()
        inside.close()
    # Then the redirect is the answer, and the server it points to is never called
    assert status == 302 and len(redirecting.hosts) == 1 and inside.hosts == []
