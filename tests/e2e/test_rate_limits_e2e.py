"""Per-user rate limits over HTTP against the local stack, with the template's own limits: concurrent requests
of one user get exactly the limit through in a window, whichever container answers them."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from local_stack.template import load

VARIABLES = {
    logical: load()["Resources"][logical]["Properties"]["Environment"]["Variables"]
    for logical in ("TrackApiFunction", "StatsIntakeFunction")
}


def fresh_window(window_seconds: int, needed: float = 20.0) -> None:
    """Wait until the current fixed window (aligned on the epoch) has `needed` seconds left."""
    left = window_seconds - time.time() % window_seconds
    if left < needed:
        time.sleep(left + 0.5)


def race(api, path: str, bodies: list[dict]) -> list[requests.Response]:
    headers = {"Authorization": f"Bearer {api.token}"}
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: requests.post(f"{api.base}{path}", json=body, headers=headers,
                                                        timeout=60), bodies))


def test_concurrent_tracks_of_one_user_pass_exactly_the_limit(local_stack, tenant):
    limit = int(VARIABLES["TrackApiFunction"]["RATE_LIMIT_TRACKS"])
    window = int(VARIABLES["TrackApiFunction"]["RATE_LIMIT_TRACKS_WINDOW_SECONDS"])
    bob, admin = local_stack.api(tenant, sub="bob", roles="user"), local_stack.api(tenant)
    fresh_window(window)

    # When bob posts twice his limit of visits at once
    answers = race(bob, "/tracks", [{"user_id": "bob", "track_type": 1, "referrer": "alice"}] * (2 * limit))

    # Then exactly `limit` are recorded; the rest are 429 with a Retry-After, and wrote nothing
    assert sorted(a.status_code for a in answers) == [201] * limit + [429] * limit
    assert all(1 <= int(a.headers["Retry-After"]) <= window for a in answers if a.status_code == 429)
    recorded = admin.get("/tracks", params={"referrer": "alice", "limit": 100}).json()["items"]
    assert len(recorded) == limit
    # and another user of the tenant is not held back by bob's limit
    carol = local_stack.api(tenant, sub="carol", roles="user")
    assert carol.post("/tracks", {"user_id": "carol", "track_type": 1, "referrer": "alice"}).status_code == 201


def test_concurrent_event_batches_of_one_user_pass_exactly_the_limit(local_stack, tenant):
    limit = int(VARIABLES["StatsIntakeFunction"]["RATE_LIMIT_EVENTS"])
    window = int(VARIABLES["StatsIntakeFunction"]["RATE_LIMIT_EVENTS_WINDOW_SECONDS"])
    user = local_stack.api(tenant, sub="u1", roles="user")
    fresh_window(window)
    per_batch = 20

    def batch() -> dict:
        return {"events": [{"event_id": uuid.uuid4().hex, "event_type": "activity.visit", "topic_type": "activity",
                            "topic_id": "42", "wu_id": "u1", "channel_type": "app"} for _ in range(per_batch)]}

    # When the user sends, at once, batches worth twice the limit of events
    answers = race(user, "/v1/events", [batch() for _ in range(2 * limit // per_batch)])

    # Then exactly the batches that fit the limit are accepted, the others refused whole
    assert sorted(a.status_code for a in answers) == [202] * (limit // per_batch) + [429] * (limit // per_batch)
    assert sum(a.json()["accepted"] for a in answers if a.status_code == 202) == limit
