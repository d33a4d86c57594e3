"""The console function: its files on the API's origin without a token, only the files it ships, and the
sign-in settings the template's parameters give it."""

from __future__ import annotations

import base64
import gzip

import pytest

from tests.support import Function, body_of, http_event, sample_event

FILES_ROUTE = "/console/{proxy+}"
OIDC_ENV = {"CONSOLE_OIDC_CLIENT_ID": "abc123", "CONSOLE_OIDC_ISSUER": "https://cognito-idp.example/pool",
            "CONSOLE_OIDC_AUTHORIZE_URL": "https://login.example/oauth2/authorize",
            "CONSOLE_OIDC_TOKEN_URL": "https://login.example/oauth2/token",
            "CONSOLE_OIDC_SCOPES": "openid email", "CONSOLE_OIDC_BEARER": "id_token"}


@pytest.fixture
def console(stack):
    return Function("ConsoleFunction", stack)


def text_of(response: dict) -> str:
    raw = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()
    return (gzip.decompress(raw) if response["headers"].get("Content-Encoding") == "gzip" else raw).decode()


def get(console, path: str, headers: dict | None = None) -> dict:
    return console(http_event("GET", path, FILES_ROUTE if path.startswith("/console/") else path, headers=headers))


def test_the_page_is_served_at_the_folder_with_a_strict_content_security_policy(console):
    response = get(console, "/console/")
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html"
    assert '<script type="module" src="js/main.js">' in text_of(response)
    csp = response["headers"]["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert response["headers"]["Referrer-Policy"] == "no-referrer"


def test_the_bare_path_redirects_to_the_folder_so_relative_modules_resolve(console):
    response = console(http_event("GET", "/console", "/console"))
    assert response["statusCode"] == 308
    assert response["headers"]["Location"] == "/console/"


def test_the_sample_event_gets_a_compressed_module(console):
    response = console(sample_event("console/get_file.json"))
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/javascript"
    assert response["headers"]["Content-Encoding"] == "gzip"
    assert "from './pages/index.js'" in text_of(response)


def test_a_file_is_answered_304_when_the_browser_holds_it(console):
    etag = get(console, "/console/console.css")["headers"]["ETag"]
    again = get(console, "/console/console.css", headers={"If-None-Match": etag})
    assert again["statusCode"] == 304
    assert not again.get("body")


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/../app.py", "/console/%2e%2e/app.py",
                                  "/console/js/../../app.py", "/console/vendor/lit-html/LICENSE"])
def test_only_the_shipped_static_files_are_served(console, path):
    response = get(console, path)
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "NOT_FOUND"


def test_without_a_client_id_the_config_offers_no_provider(console):
    response = get(console, "/console/config.json")
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "no-store"
    assert body_of(response) == {"oidc": None}


def test_the_config_names_the_provider_and_the_csp_lets_the_page_reach_its_token_endpoint(console, monkeypatch):
    for name, value in OIDC_ENV.items():
        monkeypatch.setenv(name, value)
    response = get(console, "/console/config.json")
    assert body_of(response) == {"oidc": {
        "issuer": "https://cognito-idp.example/pool", "client_id": "abc123",
        "authorize_url": "https://login.example/oauth2/authorize", "token_url": "https://login.example/oauth2/token",
        "scopes": "openid email", "bearer": "id_token"}}
    page = get(console, "/console/")
    assert "connect-src 'self' https://login.example;" in page["headers"]["Content-Security-Policy"]


def test_the_template_passes_the_console_parameters_and_jwt_issuer(stack):
    env = Function("ConsoleFunction", stack).spec.environment
    assert env["CONSOLE_OIDC_ISSUER"] == "https://auth.local.example"
    assert env["CONSOLE_OIDC_CLIENT_ID"] == ""
    assert env["CONSOLE_OIDC_BEARER"] == "id_token"
