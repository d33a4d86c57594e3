"""How a generated reward reaches its user: a webhook to the tenant (HMAC-signed), an e-mail (SES) or a text
message (SNS). Each raises DeliveryFailed on a failure worth retrying; a webhook whose URL leads into a private
network raises UnsafeDestination (core.outbound), which no retry can fix. Clients are built lazily, once."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import BotoCoreError, ClientError

from marketing.core import aws, config, outbound

SIGNATURE_HEADER = "X-Marketing-Signature"
TIMEOUT_SECONDS = 5


class DeliveryFailed(Exception):
    """The channel refused or could not be reached; a retry may succeed."""


@cache
def _ses():
    return aws.client("ses")


@cache
def _sns():
    return aws.client("sns")


@cache
def _secrets() -> SecretsProvider:
    return SecretsProvider(boto3_client=aws.client("secretsmanager"))


def reset() -> None:
    """Forget cached clients (tests point them at a fresh mock)."""
    for built in (_ses, _sns, _secrets):
        built.cache_clear()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + HMAC-SHA256 of `{timestamp}.{body}`: the receiver recomputes it with the shared secret and
    refuses stale timestamps, so a captured request cannot be replayed later."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def tenant_secret(tenant_id: str, app_id: str, name: str) -> str:
    """An app's secrets live under its tenant's and its own prefix: a reward names one of them, never another
    app's (whose receiver would otherwise accept what this app's rewards send, signed with its secret)."""
    return f"marketing/{config.stage()}/tenants/{tenant_id}/apps/{app_id}/{name}"


def webhook(url: str, secret_id: str | None, payload: dict[str, Any]) -> None:
    """POST the payload to the tenant's URL; raises UnsafeDestination (from core.outbound) before any
    connection when the URL leads into a private network, DeliveryFailed when the receiver fails."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Marketing-Timestamp": timestamp,
               "X-Marketing-Grant-Id": payload["grant_id"]}  # the receiver's idempotency key
    if secret_id:
        secret = _secrets().get(secret_id, max_age=300)
        headers[SIGNATURE_HEADER] = signature(str(secret), timestamp, body)
    try:
        status = outbound.post(url, body, headers, timeout=TIMEOUT_SECONDS)
    except OSError as exc:  # timeouts, refused connections, names that do not resolve (yet)
        raise DeliveryFailed(f"webhook unreachable: {exc}") from exc
    if 300 <= status < 400:
        raise DeliveryFailed(f"webhook answered {status}; redirects are not followed")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"webhook answered {status}")


def _text(payload: dict[str, Any]) -> str:
    lines = [f"You earned a reward: {payload['reward_name']}."]
    if payload.get("code"):
        lines.append(f"Your code: {payload['code']}")
    if payload.get("valid_until"):
        lines.append(f"Valid until {payload['valid_until']}.")
    return "\n".join(lines)


def email(address: str, template: str, payload: dict[str, Any]) -> None:
    try:
        _ses().send_email(Source=os.environ["GRANT_SENDER_EMAIL"], Destination={"ToAddresses": [address]},
                          Message={"Subject": {"Data": f"Your reward: {payload['reward_name']}"},
                                   "Body": {"Text": {"Data": _text(payload)}}},
                          Tags=[{"Name": "template", "Value": template}])
    except (BotoCoreError, ClientError) as exc:  # unverified sender, throttling: worth a retry
        raise DeliveryFailed(f"e-mail not sent: {exc}") from exc


def sms(phone: str, template: str, payload: dict[str, Any]) -> None:
    try:
        _sns().publish(PhoneNumber=phone, Message=_text(payload),
                       MessageAttributes={"template": {"DataType": "String", "StringValue": template}})
    except (BotoCoreError, ClientError) as exc:
        raise DeliveryFailed(f"text message not sent: {exc}") from exc
