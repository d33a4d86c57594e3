"""Platform adapters: how the scheduled pull gets recent orders out of a CPS platform. Each adapter turns
the platform's records into `OrderIn`, and the pull feeds them into the same ingestion as webhooks.

The scheduled pull reads its sources from `CPS_PULL_SOURCES` (JSON) if set, else in Lambda from the Secrets
Manager secret named by `CPS_PULL_SOURCES_SECRET` (the template's `CpsPullSourcesSecret`, cached 5 minutes): a
source may carry a platform's bearer token, a credential.
A pull source is a JSON object: `{"tenant_id", "app_id", "platform", "adapter": "json" | "fake", ...}`: the
app whose orders they are.
- `json`: `GET {url}?since=...&until=...[&cursor=...]` answering `{"orders": [...], "next_cursor": ...}`;
  `fields` renames the platform's keys to ours (`{"order_id": "orderNo", ...}`), `token` is sent as a
  bearer token.
- `fake`: a platform in memory whose orders are given in the source itself (`orders`): the local stack and
  the tests drive the pull path with it, without a network.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from marketing.core import aws
from marketing.core.clock import iso

PAGE_LIMIT = 50  # pages per pull: a runaway cursor cannot keep the function busy forever


class PlatformAdapter(Protocol):
    def fetch(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        """The platform's orders updated in [since, until), as raw records in our field names."""
        ...


@dataclass
class JsonAdapter:
    url: str
    fields: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    timeout: float = 10.0

    def _rename(self, record: dict[str, Any]) -> dict[str, Any]:
        renamed = dict(record)
        for ours, theirs in self.fields.items():
            if theirs in record:
                renamed[ours] = record[theirs]
        return renamed

    def fetch(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        cursor = None
        for _ in range(PAGE_LIMIT):
            query = {"since": iso(since), "until": iso(until), **({"cursor": cursor} if cursor else {})}
            request = urllib.request.Request(f"{self.url}?{urllib.parse.urlencode(query)}",
                                             headers={"Accept": "application/json"})
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (configured URL)
                page = json.loads(answer.read())
            yield from (self._rename(r) for r in page.get("orders", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return


@dataclass
class FakeAdapter:
    orders: list[dict[str, Any]] = field(default_factory=list)

    def fetch(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        yield from (dict(o) for o in self.orders)


def adapter_for(source: dict[str, Any]) -> PlatformAdapter:
    kind = source.get("adapter", "json")
    if kind == "fake":
        return FakeAdapter(list(source.get("orders", [])))
    if kind == "json":
        return JsonAdapter(url=source["url"], fields=dict(source.get("fields", {})), token=source.get("token"))
    raise ValueError(f"unknown adapter {kind!r}")


def configured_sources() -> list[dict[str, Any]]:
    explicit = os.environ.get("CPS_PULL_SOURCES")
    if explicit:
        return list(json.loads(explicit))
    name = os.environ.get("CPS_PULL_SOURCES_SECRET")
    if not name or not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return []  # outside Lambda (the local stack) pulls are invoked with their sources
    return list(_secrets().get(name, transform="json", max_age=300) or [])


@cache
def _secrets() -> SecretsProvider:
    return SecretsProvider(boto3_client=aws.client("secretsmanager"))
