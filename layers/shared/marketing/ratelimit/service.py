"""Per-user rate limits: a `user` token may send at most `RATE_LIMIT_{ROUTE}` units (requests, or events for
`POST /v1/events`) per fixed window of `RATE_LIMIT_{ROUTE}_WINDOW_SECONDS`, so one account cannot inflate
counts or referral credit. Staff tokens (admin, service) are not limited here.

Fixed windows aligned on the epoch: one counter item per user, route and window, in DynamoDB (Lambda
environments share nothing), deleted by TTL a window after it closes. A burst across a window's end can pass
up to twice the limit in a short while; the average stays bounded, for one write per request.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from marketing.core.errors import TooManyRequests
from marketing.core.identity import Caller
from marketing.ratelimit import dal

EVENTS, TRACKS = "EVENTS", "TRACKS"


@dataclass(frozen=True)
class Limit:
    units: int
    window_seconds: int


# What a route allows when the template does not say (template.yaml sets the same values).
DEFAULTS = {EVENTS: Limit(120, 60), TRACKS: Limit(10, 60)}


def limit_of(route: str) -> Limit:
    default = DEFAULTS[route]
    return Limit(int(os.environ.get(f"RATE_LIMIT_{route}", default.units)),
                 int(os.environ.get(f"RATE_LIMIT_{route}_WINDOW_SECONDS", default.window_seconds)))


def charge(caller: Caller, route: str, cost: int = 1) -> None:
    """Count `cost` units of `route` for a `user` caller; a 429 with Retry-After (and nothing counted) once
    its window's limit would be passed."""
    if caller.is_staff:
        return
    limit, moment = limit_of(route), time.time()
    window = int(moment // limit.window_seconds)
    closes = (window + 1) * limit.window_seconds
    if cost > limit.units:
        raise TooManyRequests(f"at most {limit.units} per {limit.window_seconds} s: send fewer at once")
    if not dal.take(caller.scope, caller.sub, route, window, cost=cost, limit=limit.units,
                    expires=closes + limit.window_seconds):
        raise TooManyRequests(f"at most {limit.units} per {limit.window_seconds} s for a user: try again later",
                              retry_after=max(1, math.ceil(closes - moment)))
