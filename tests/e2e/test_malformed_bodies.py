"""Every route of the template that takes a body, sent one it cannot read, over HTTP: a 415 for another media
type, a 400 `MALFORMED_BODY` for bytes that are not UTF-8 or JSON nested 5,000 deep; never a 5xx. (Issue #10:
184 answers of 500 came from these bodies on the POST and PUT routes.)"""

from __future__ import annotations

import re

import pytest
import requests

from tests.support import http_routes

WRITES = sorted(route for route, public in http_routes().items()
                if not public and route.split(" ", 1)[0] in ("POST", "PUT"))
# (content type, raw body, status, code)
BODIES = {
    "text/plain": ("text/plain", b'{"name": "x"}', 415, "UNSUPPORTED_MEDIA_TYPE"),
    "application/xml": ("application/xml", b"<reward><name>x</name></reward>", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "application/octet-stream": ("application/octet-stream", b"\x00\x01\xff", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "JSON not UTF-8": ("application/json", b'{"name": "caf\xe9"}', 400, "MALFORMED_BODY"),
    "JSON nested 5,000 deep": ("application/json", b"[" * 5000 + b"]" * 5000, 400, "MALFORMED_BODY"),
}


@pytest.fixture(scope="module")
def admin(local_stack) -> str:
    return local_stack.token("t-malformed", sub="ops", roles="admin")


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("route", WRITES)
def test_a_body_that_cannot_be_read_is_a_4xx_in_the_error_shape(local_stack, admin, route, body):
    content_type, raw, status, code = body
    method, path = route.split(" ", 1)
    path = re.sub(r"\{(\w+)\}", lambda m: "2" if m.group(1) == "track_type" else "abcd1234", path)  # valid values
    answer = requests.request(method, local_stack.api_url + path, data=raw, timeout=30,
                              headers={"Authorization": f"Bearer {admin}", "Content-Type": content_type})
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text


def test_the_webhook_refuses_unsigned_bytes_without_a_server_error(local_stack):
    for content_type, raw, *_ in BODIES.values():
        answer = requests.post(f"{local_stack.api_url}/v1/cps/t-malformed/app1/fake/orders", data=raw, timeout=30,
                               headers={"Content-Type": content_type})
        assert answer.status_code == 401, answer.text
