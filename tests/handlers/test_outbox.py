"""The transactional outbox: a write commits its events with itself; OutboxPublisherFunction puts them on the
bus from the table's stream (template.yaml), at least once, and consumers count a repeat once."""

from __future__ import annotations

import json

import boto3
import pytest

from local_stack.streams import stream_poller
from tests.handlers.test_redeem_api import ADMIN, export, exported_codes, new_batch, new_reward, redeem
from tests.handlers.test_stats import receive_all
from tests.support import Function, body_of, bus_tap, claims, http_event, publish_outbox, spec_of

REGION = "us-east-1"


@pytest.fixture
def apis(stack):
    return Function("RewardsApiFunction", stack), Function("RedeemApiFunction", stack)


def test_a_redemption_whose_put_events_fails_answers_200_and_its_event_reaches_the_bus_later(apis, stack,
                                                                                              monkeypatch):
    rewards_api, redeem_api = apis
    code = exported_codes(stack, export(redeem_api, new_batch(redeem_api, new_reward(rewards_api))["batch_id"],
                                        count=1)[1])[0]
    redeemed = bus_tap(stack, {"detail-type": ["code.redeemed"]})
    # Given a bus that refuses every event
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    # When the code is redeemed, Then the redemption answers 200: it committed, with its event in the outbox
    status, grant = redeem(redeem_api, code)
    assert status == 200 and grant["status"] == "DISTRIBUTED"
    assert publish_outbox(stack) == 1 and redeemed() == []  # the publisher's batch failed: it is retried
    # When the bus accepts events again, Then the retried batch puts the event on it, once
    monkeypatch.setenv("EVENT_BUS_NAME", stack.ref("EventBus"))
    events = redeemed()
    assert [e["detail"]["event_id"] for e in events] == [f"{grant['grant_id']}:redeemed"]
    assert redeemed() == []


def test_a_repeated_stream_record_publishes_an_event_that_statistics_count_once(stack):
    # Given an arrival recorded through a promo code's owner (its track.visit committed in the outbox)
    track_api = Function("TrackApiFunction", stack)
    answer = track_api(http_event("POST", "/tracks", "/tracks", body={"user_id": "v-1", "track_type": 1,
                                                                      "referrer": "r-1"}, claims_=ADMIN))
    assert answer["statusCode"] in (200, 201), answer
    # When Lambda delivers the same stream batch twice (a retry after the events were put)
    publisher = Function("OutboxPublisherFunction", stack)
    props = stack.resolver.resolve(spec_of("OutboxPublisherFunction", stack).events["TableStream"]["Properties"])

    def twice(records: list[dict]) -> set[str]:
        for _ in range(2):
            assert publisher({"Records": records}) == {"batchItemFailures": []}
        return set()

    streams = boto3.client("dynamodbstreams", region_name=REGION,
                           endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com")
    poller = stream_poller(lambda s: boto3.client(s, region_name=REGION), stack.ref("Table"), props, twice,
                           streams=streams)
    assert poller.poll_once() == 1  # the filter keeps the outbox item only (not the arrival or its counter)
    # Then the stats queue holds the event twice, with one event id, and the consumer counts it once
    records = receive_all(stack)
    assert len(records) == 2 and len({json.loads(r["body"])["detail"]["event_id"] for r in records}) == 1
    assert Function("StatsConsumerFunction", stack)({"Records": records}) == {"batchItemFailures": []}
    stats_api = Function("StatsApiFunction", stack)
    answer = stats_api(http_event("GET", "/v1/stats/referrer/r-1", "/v1/stats/{topic_type}/{topic_id}",
                                  claims_=claims(roles="[admin]")))
    assert body_of(answer)["totals"]["share_visits"] == 1
