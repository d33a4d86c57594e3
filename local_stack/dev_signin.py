"""The console's development sign-in, served by the local stack only (AWS has no such route).

`GET /_local/token` tells the console it is there; `POST /_local/token {tenant, app, roles, sub}` answers
`{token, expires_in}`, a token signed as the local JWT authorizer expects. Bad input answers 422 in the API's
error shape, naming the field, as the console shows errors beside fields."""

from __future__ import annotations

import json
import re
from functools import cache

from werkzeug.wrappers import Request, Response

from local_stack.auth import make_token
from local_stack.template import load, parameter_defaults

PATH = "/_local/token"
ROLES = ("admin", "service", "user")
TTL_SECONDS = 8 * 3600
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


@cache
def _jwt_settings() -> tuple[str, str]:
    params = parameter_defaults(load())
    return params["JwtIssuer"], params["JwtAudience"]


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _problems(body) -> list[dict]:
    if not isinstance(body, dict):
        return [{"field": "body", "message": "a JSON object is required"}]
    problems = [{"field": f"body.{name}", "message": "letters, digits and _.:@- only, 1 to 128 characters"}
                for name in ("tenant", "app", "sub") if not _ID.match(str(body.get(name) or ""))]
    roles = body.get("roles")
    if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
        problems.append({"field": "body.roles", "message": f"one or more of {', '.join(ROLES)}"})
    return problems


def handle(request: Request) -> Response:
    if request.method == "GET":
        return _json(200, {"roles": list(ROLES)})
    if request.method != "POST":
        return _json(405, {"error": {"code": "METHOD_NOT_ALLOWED", "message": "GET or POST", "details": []}})
    body = request.get_json(silent=True)
    problems = _problems(body)
    if problems:
        return _json(422, {"error": {"code": "VALIDATION_ERROR", "message": "invalid sign-in", "details": problems}})
    issuer, audience = _jwt_settings()
    token = make_token(tenant=body["tenant"], app=body["app"], sub=body["sub"], roles=body["roles"],
                       issuer=issuer, audience=audience, ttl_seconds=TTL_SECONDS)
    return _json(200, {"token": token, "expires_in": TTL_SECONDS})
