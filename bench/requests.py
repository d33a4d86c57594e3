"""Warm per-request overhead of each API function: the handler's own time (Powertools' resolver, validation,
serialization, logging and metrics, our domain code) without the time spent in AWS calls.

Each function is imported once (a warm container) and fed one representative GET and one POST from events/,
against the template's resources in moto so that every route finds its data. The AWS calls are not stubbed
away but timed: the time inside botocore's `_make_api_call` (the SDK and moto's service) is subtracted from
each invocation's time, which leaves what the function itself costs per request. Times are CPU time of this
process (moto runs in it too), so other processes' load on a shared machine does not count. Goal: GET p50
at most GOAL_MS."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

from botocore.client import BaseClient

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import table
from tests.support import Function, mocked_stack, sample_event

RUNS = 20
GOAL_MS = 3.0
# Per API function, a representative GET and POST (samples of events/; `None`: the function has no such route).
# A POST that creates something runs first so that the GET finds it.
ROUTES = {
    "HealthFunction": ("health/get_health.json", None),
    "TrackApiFunction": ("track_api/get_promo.json", "track_api/post_track_visit.json"),
    "CpsApiFunction": ("cps_api/get_affiliate.json", "cps_api/register_affiliate.json"),
    "CpsWebhookFunction": (None, "cps_webhook/order_paid.json"),
    "RewardsApiFunction": ("rewards_api/list_rewards.json", "rewards_api/create_reward.json"),
    "RedeemApiFunction": ("redeem_api/list_codes.json", "redeem_api/redeem.json"),
    "CampaignsApiFunction": ("campaigns_api/list_campaigns.json", "campaigns_api/create_campaign.json"),
    "StatsIntakeFunction": (None, "stats_intake/post_events_every_family.json"),
    "StatsApiFunction": ("stats_api/get_stats.json", None),
    "ConsoleFunction": ("console/get_file.json", None),
}


class _AwsTime:
    """Seconds spent inside AWS calls (botocore and the service) since the last reset."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def installed(self):
        original = BaseClient._make_api_call

        def timed(client, operation, params):
            started = time.process_time()
            try:
                return original(client, operation, params)
            finally:
                self.seconds += time.process_time() - started

        BaseClient._make_api_call = timed
        try:
            yield self
        finally:
            BaseClient._make_api_call = original


def _p50_ms(api: Function, sample: str, aws: _AwsTime) -> tuple[str, str]:
    statuses = set()
    own = []
    for _ in range(RUNS + 1):  # the first one is warm-up: lazy clients and schemas are built there
        event = sample_event(sample)
        aws.seconds = 0.0
        started = time.process_time()
        answer = api(event)
        own.append(time.process_time() - started - aws.seconds)
        statuses.add(answer["statusCode"])
        assert answer["statusCode"] < 500, (sample, answer)
    return f"{statistics.median(own[1:]) * 1000:.2f} ms", "/".join(map(str, sorted(statuses)))


def run() -> list[str]:
    rows = []
    with mocked_stack("bench") as stack, _AwsTime().installed() as aws:
        for logical_id, (get, post) in ROUTES.items():
            api = Function(logical_id, stack)
            post_figures = _p50_ms(api, post, aws) if post else ("", "")
            get_figures = _p50_ms(api, get, aws) if get else ("", "")
            over = get and float(get_figures[0].split()[0]) > GOAL_MS
            rows.append((logical_id, *get_figures, *post_figures, f"GET over {GOAL_MS} ms" if over else ""))
    return [f"p50 of {RUNS} warm requests (CPU time), time inside AWS calls (moto here) excluded",
            *table(rows, ("function", "GET p50", "status", "POST p50", "status", "goal"))]
