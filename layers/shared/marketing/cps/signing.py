"""Webhook signatures: HMAC-SHA256 over `{timestamp}.{raw body}`, hex in `X-Signature`, the timestamp
(Unix seconds) in `X-Timestamp`, accepted within 5 minutes either way.

The signing key binds what the signature authorizes, the URL's tenant, app and platform: a platform has one
secret (per stage), and the key of each (tenant, app, platform) is derived from it,
`key = HMAC-SHA256(platform secret, "cps-webhook/{tenant_id}/{app_id}/{platform}")` (hex; ids never hold `/`,
so no two URLs share the text). Each platform account of an app is configured with its own key, so a webhook
signed for one URL fails (401) on every other: another tenant's, another app's, another platform's (even where
platforms share one secret, as they do locally). One stored secret per platform serves every tenant and app.

Where the platform secret comes from: `CPS_WEBHOOK_SECRET_<PLATFORM>` if set; in Lambda otherwise the
Secrets Manager secret `{CPS_WEBHOOK_SECRET_PREFIX}{platform}` (cached 5 minutes, missing = every request
refused, and the miss cached a minute); outside Lambda (the local stack, tests) the default
`local-webhook-secret`.

`python -m marketing.cps.signing TENANT APP PLATFORM FILE` prints the headers for a body, for curl.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import time
from functools import cache
from pathlib import Path

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from marketing.core import aws

LOCAL_DEFAULT_SECRET = "local-webhook-secret"
TOLERANCE_SECONDS = 300
SECRET_MAX_AGE = 300  # a stored secret is kept 5 minutes
MISSING_SECRET_TTL = 60  # a missing one is remembered a minute: a flood of bad webhooks costs one call a minute
_MISSING_LIMIT = 1024  # made-up platform names must not grow a container's memory without bound

_missing: dict[str, float] = {}  # secret name → time.monotonic() until which it counts as missing


@cache
def _secrets() -> SecretsProvider:
    """Built lazily, once per container, from boto3's default session (tests point it at their mock)."""
    return SecretsProvider(boto3_client=aws.client("secretsmanager"))


def reset() -> None:
    """Forget the client and its cached secrets and misses (tests start each stack afresh)."""
    _secrets.cache_clear()
    _missing.clear()


def _stored_secret(name: str) -> str | None:
    if _missing.get(name, 0.0) > time.monotonic():
        return None
    try:
        return _secrets().get(name, max_age=SECRET_MAX_AGE)
    except GetParameterError:
        # Any failure, not only "not found": it already outlived boto3's retries, and an order whose webhook
        # is refused meanwhile is redelivered by its platform or picked up by the next pull.
        if len(_missing) >= _MISSING_LIMIT:
            _missing.clear()
        _missing[name] = time.monotonic() + MISSING_SECRET_TTL
        return None


def platform_secret(platform: str) -> str | None:
    explicit = os.environ.get(f"CPS_WEBHOOK_SECRET_{platform.upper()}")
    if explicit:
        return explicit
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return LOCAL_DEFAULT_SECRET
    prefix = os.environ.get("CPS_WEBHOOK_SECRET_PREFIX")
    return _stored_secret(prefix + platform) if prefix else None  # fail closed: no secret, no accepted webhook


def webhook_key(secret: str, tenant_id: str, app_id: str, platform: str) -> str:
    """The key of one webhook URL, `/v1/cps/{tenant_id}/{app_id}/{platform}/orders`."""
    return hmac.new(secret.encode(), f"cps-webhook/{tenant_id}/{app_id}/{platform}".encode(),
                    hashlib.sha256).hexdigest()


def sign(key: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(tenant_id: str, app_id: str, platform: str, body: bytes, *, timestamp: int | None = None,
                   secret: str | None = None) -> dict[str, str]:
    """The headers a platform sends with `body` (for tests, tools and the docs' curl examples)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    key = webhook_key(secret or platform_secret(platform) or "", tenant_id, app_id, platform)
    return {"X-Timestamp": str(stamp), "X-Signature": sign(key, stamp, body)}


def verify(tenant_id: str, app_id: str, platform: str, body: bytes, timestamp: str | None, signature: str | None,
           *, now: float | None = None) -> bool:
    """True only for a fresh timestamp and the signature, with the key of this tenant, app and platform, over
    exactly these bytes."""
    # Headers are attacker-controlled: ASCII digits of a sane length only (int() of 5,000 digits raises, and
    # "²".isdigit() is true), and the signature is compared as bytes (compare_digest refuses non-ASCII text).
    if not timestamp or not signature or not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    secret = platform_secret(platform)
    if not secret:
        return False
    expected = sign(webhook_key(secret, tenant_id, app_id, platform), timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode("utf-8", "replace"))


if __name__ == "__main__":  # pragma: no cover - a tool for people
    tenant, app, platform_, path = sys.argv[1:5]
    for name, value in signed_headers(tenant, app, platform_, Path(path).read_bytes()).items():
        print(f"{name}: {value}")
