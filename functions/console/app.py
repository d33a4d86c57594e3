"""The operator console: its static files under /console/, and /console/config.json (how to sign in).

The files ship inside this function's package, so `sam deploy` delivers them with the code in one command,
on the API's own origin (no CORS). They are read once per container; the routes need no token (the page
signs in itself, and every API call it makes carries the operator's bearer token)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response

from marketing.core.errors import NotFound
from marketing.core.http import build_resolver, lambda_handler_for

STATIC = Path(__file__).parent / "static"
PREFIX = "/console/"
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
         ".json": "application/json"}


def _load() -> dict[str, tuple[str, str, str]]:
    """Every file under static/ by its URL path: (text, content type, ETag). Only these paths are served."""
    files = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            body = path.read_text()
            etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
            files[path.relative_to(STATIC).as_posix()] = (body, TYPES[path.suffix], etag)
    return files


FILES = _load()


def oidc_settings() -> dict | None:
    """The identity provider's authorization-code flow (template parameters), or None when unset."""
    client_id = os.environ.get("CONSOLE_OIDC_CLIENT_ID", "")
    if not client_id:
        return None
    return {"issuer": os.environ.get("CONSOLE_OIDC_ISSUER", ""), "client_id": client_id,
            "authorize_url": os.environ.get("CONSOLE_OIDC_AUTHORIZE_URL", ""),
            "token_url": os.environ.get("CONSOLE_OIDC_TOKEN_URL", ""),
            "scopes": os.environ.get("CONSOLE_OIDC_SCOPES", "openid"),
            "bearer": os.environ.get("CONSOLE_OIDC_BEARER", "id_token")}


def security_headers() -> dict[str, str]:
    """Scripts, styles and API calls from this origin only (plus the token endpoint of the sign-in);
    no framing; no referrer, so an authorization code in the URL never leaks."""
    token_url = (oidc_settings() or {}).get("token_url", "")
    token_origin = "{0.scheme}://{0.netloc}".format(urlsplit(token_url)) if token_url else ""
    csp = (f"default-src 'self'; connect-src 'self' {token_origin}".rstrip() +
           "; img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


app = build_resolver()


@app.get("/console", include_in_schema=False)
def console_root() -> Response[str]:
    # The page's modules are relative to /console/: without the slash they would not resolve.
    return Response(status_code=308, headers={"Location": PREFIX}, body="")


@app.get("/console/config.json", include_in_schema=False)
def console_config() -> Response[dict]:
    return Response(status_code=200, content_type="application/json", body={"oidc": oidc_settings()},
                    headers={"Cache-Control": "no-store", **security_headers()})


@app.get("/console/.*", compress=True, include_in_schema=False)
def console_file() -> Response[str]:
    relative = app.current_event.path[len(PREFIX):] or "index.html"
    found = FILES.get(relative)
    if found is None:
        raise NotFound(f"no console file {relative}")
    body, content_type, etag = found
    headers = {"ETag": etag, "Cache-Control": "no-cache", **security_headers()}
    if app.current_event.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers, body="")
    return Response(status_code=200, content_type=content_type, body=body, headers=headers)


lambda_handler = lambda_handler_for(app, idempotent_writes=False)
