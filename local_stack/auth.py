"""What the HttpApi JWT authorizer does, locally: HS256 tokens signed with `LOCAL_JWT_SECRET`."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import jwt

# The issue fixes the local default secret; PyJWT warns that it is short. It only ever signs local tokens.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)

DEFAULT_SECRET = "local-dev-secret"


def secret() -> str:
    return os.environ.get("LOCAL_JWT_SECRET", DEFAULT_SECRET)


def make_token(*, tenant: str, sub: str, roles: list[str] | str, app: str = "app1", issuer: str,
               audience: str, ttl_seconds: int = 3600, extra: dict[str, Any] | None = None) -> str:
    now = int(time.time())
    claims = {"sub": sub, "tenant_id": tenant, "app_id": app,
              "roles": roles.replace(",", " ").split() if isinstance(roles, str) else list(roles),
              "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl_seconds, **(extra or {})}
    return jwt.encode(claims, secret(), algorithm="HS256")


def verify(header: str | None, *, issuer: str, audience: list[str] | str) -> dict[str, str] | None:
    """The claims as API Gateway passes them to the function (every value a string, a list as `[a b]`),
    or None when the token is missing, badly signed, expired, or for another issuer or audience."""
    if not header:
        return None
    token = header[7:] if header.lower().startswith("bearer ") else header
    try:
        claims = jwt.decode(token, secret(), algorithms=["HS256"], issuer=issuer, audience=audience,
                            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    return {k: (f"[{' '.join(map(str, v))}]" if isinstance(v, list) else str(v)) for k, v in claims.items()}
