"""Stats handlers on moto: intake onto the queue, the consumer counting exactly once, the queries."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from local_stack.delivery import sqs_record
from marketing.core.clock import iso, now
from marketing.stats import delivery
from marketing.stats.metrics import METRICS
from tests.support import Function, RunningOutContext, body_of, claims, http_event, sample_event

SERVICE = claims("t1", "backend", "[service]")
ADMIN = claims("t1", "ops", "[admin]")
TODAY = now().date().isoformat()
EVERY_FAMILY = json.loads(sample_event("stats_intake/post_events_every_family.json")["body"])["events"]

# What the sample batch (every family) adds to activity 42 on all channels; every other metric stays 0.
EXPECTED_ACTIVITY = {
    "visits": 3, "visitors": 2, "shares": 1, "sharers": 1, "h5_visits": 1, "h5_visitors": 1,
    "purchases": 2, "purchased_quantity": 3, "purchased_coupons": 3, "purchase_amount": 2980, "buyers": 2,
    "member_purchases": 1, "member_purchased_quantity": 2, "member_purchased_coupons": 2,
    "member_purchase_amount": 1990, "member_buyers": 1, "share_purchases": 1, "share_buyers": 1,
    "flash_purchases": 1, "flash_quantity": 2, "flash_coupons": 2, "flash_buyers": 1,
    "cancelled_payments": 1, "cancelled_amount": 500,
    "refunds": 1, "refunded_coupons": 1, "refund_amount": 990, "refunders": 1,
    "vip_cards": 2, "vip_card_receivers": 2, "member_vip_cards": 1, "member_vip_card_receivers": 1,
    "vip_renewals": 1, "vip_new_memberships": 1, "vip_h5_activations": 1, "vip_amount": 6000,
    "member_vip_amount": 3000,
    "red_packet_receipts": 1, "red_packets": 3, "red_packet_receivers": 1,
    "expired_red_packets": 2, "expired_red_packet_holders": 1, "member_expired_red_packets": 2,
    "member_expired_red_packet_holders": 1,
    "redemptions": 2, "redeemers": 2, "redeemed_brands": 1, "redemption_discount_amount": 800,
    "redeemed_amount": 3700, "member_redemptions": 1, "member_redeemers": 1, "member_redeemed_brands": 1,
    "member_redemption_discount_amount": 500, "member_redeemed_amount": 2500,
    "revocations": 1, "revokers": 1, "revoked_amount": 1200,
    "expired_coupons": 1, "expired_coupon_value": 800,
    "lottery_entries": 2, "lottery_entrants": 1,
    "share_visits": 1, "share_visitors": 1, "new_users": 1, "share_visits_joined": 1,
    "groups_opened": 1, "group_joins": 1, "groups_succeeded": 1,
    "tasks_completed": 1, "task_completers": 1,
}
EXPECTED_PAGE = {"visits": 1, "visitors": 1, "shares": 1, "sharers": 1}
EXPECTED_WX = {"visits": 2, "visitors": 1, "shares": 1, "sharers": 1, "purchases": 1, "purchased_quantity": 2,
               "purchased_coupons": 2, "purchase_amount": 1990, "buyers": 1, "member_purchases": 1,
               "member_purchased_quantity": 2, "member_purchased_coupons": 2, "member_purchase_amount": 1990,
               "member_buyers": 1, "share_purchases": 1, "share_buyers": 1, "flash_purchases": 1,
               "flash_quantity": 2, "flash_coupons": 2, "flash_buyers": 1}


def full(expected: dict[str, int]) -> dict[str, int]:
    return {name: expected.get(name, 0) for name in METRICS}


@pytest.fixture
def fns(stack):
    return {name: Function(f"Stats{name.title()}Function", stack) for name in ("intake", "consumer", "api")}


def post_events(fns, events, claims_=SERVICE) -> dict:
    return fns["intake"](http_event("POST", "/v1/events", "/v1/events", body={"events": events}, claims_=claims_))


def stats(fns, topic="activity/42", claims_=ADMIN, **query) -> dict:
    answer = fns["api"](http_event("GET", f"/v1/stats/{topic}", "/v1/stats/{topic_type}/{topic_id}",
                                   query=query or None, claims_=claims_))
    assert answer["statusCode"] == 200, answer
    return body_of(answer)


def receive_all(stack) -> list[dict]:
    """Every message on the stats queue as SQS event records (taken off the queue)."""
    sqs, url = boto3.client("sqs"), stack.queue_urls["StatsQueue"]
    records = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages"):
        records += [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:StatsQueue") for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return records


def test_every_family_is_queued_then_counted_exactly(fns, stack):
    # Given the sample batch with every event type, when it is posted
    answer = post_events(fns, EVERY_FAMILY)

    # Then every event is accepted and on the queue
    assert answer["statusCode"] == 202
    result = body_of(answer)
    assert (result["accepted"], result["rejected"]) == (len(EVERY_FAMILY), 0)
    records = receive_all(stack)
    assert len(records) == len(EVERY_FAMILY)

    # When the consumer takes them in one batch, then the totals are exact, uniques included
    assert fns["consumer"]({"Records": records}) == {"batchItemFailures": []}
    report = stats(fns)
    assert report["totals"] == full(EXPECTED_ACTIVITY)
    assert [d["date"] for d in report["days"]][-1] == TODAY and len(report["days"]) == 30
    assert report["days"][-1]["metrics"] == {k: v for k, v in EXPECTED_ACTIVITY.items()}
    assert stats(fns, "page/7")["totals"] == full(EXPECTED_PAGE)
    assert stats(fns, channel_type="wx")["totals"] == full(EXPECTED_WX)
    assert stats(fns, channel_type="h5c")["totals"] == full({"h5_visits": 1, "h5_visitors": 1})


def test_the_same_batch_delivered_twice_counts_once(fns, stack):
    post_events(fns, EVERY_FAMILY)
    records = receive_all(stack)
    fns["consumer"]({"Records": records})
    before = stats(fns)

    # Redelivered whole, then in two overlapping halves, then with each message twice in one batch
    assert fns["consumer"]({"Records": records}) == {"batchItemFailures": []}
    fns["consumer"]({"Records": records[:15]})
    fns["consumer"]({"Records": records[10:]})
    fns["consumer"]({"Records": records[:5] + records[:5]})

    assert stats(fns) == before
    assert before["totals"] == full(EXPECTED_ACTIVITY)


def test_a_poison_message_fails_alone(fns):
    # Given a batch of an intake message, a tracking event forwarded by the rule and a poison message
    event = sample_event("stats_consumer/sqs_batch_with_poison.json")

    # Then only the poison message is reported failed, and the others are counted
    assert fns["consumer"](event) == {"batchItemFailures": [{"itemIdentifier": "m-3"}]}
    assert fns["consumer"](event) == {"batchItemFailures": [{"itemIdentifier": "m-3"}]}
    day = {"from": "2026-11-23", "to": "2026-11-23"}
    assert stats(fns, **day)["totals"]["visits"] == 1
    referrer = stats(fns, "referrer/u-1001", **day)["totals"]
    assert (referrer["share_visits"], referrer["share_visitors"], referrer["new_users"]) == (1, 1, 0)


def test_each_event_is_validated_on_its_own_and_only_valid_ones_are_queued(fns, stack):
    events = [
        EVERY_FAMILY[0],
        {**EVERY_FAMILY[7], "payload": {"order_id": "o-1", "amount": -5}},
        {**EVERY_FAMILY[1], "event_type": "activity.dance"},
        {**EVERY_FAMILY[2], "topic_id": "has#hash"},
        {**EVERY_FAMILY[3], "ctime": iso(now() - timedelta(days=40))},
        {**EVERY_FAMILY[4], "tenant_id": "t1"},
        EVERY_FAMILY[0],
    ]
    result = body_of(post_events(fns, events))

    fields = [[e["field"] for e in r["errors"]] for r in result["results"]]
    assert [r["accepted"] for r in result["results"]] == [True, False, False, False, False, False, False]
    assert fields == [[], ["events.1.payload.amount"], ["events.2.event_type"], ["events.3.topic_id"],
                      ["events.4.ctime"], ["events.5.tenant_id"], ["events.6.event_id"]]
    assert result["results"][2]["errors"][0]["message"].startswith("unknown event_type; one of: activity.h5_visit")
    assert (result["accepted"], result["rejected"]) == (1, 6)
    assert len(receive_all(stack)) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"events": []}, "body.events"),
    ({"events": [{"event_id": f"e{i}"} for i in range(101)]}, "body.events"),
    ({"events": ["not an object"]}, "body.events.0"),
    ({}, "body.events"),
])
def test_a_malformed_batch_is_refused_whole(fns, stack, body, field):
    answer = fns["intake"](http_event("POST", "/v1/events", "/v1/events", body=body, claims_=SERVICE))
    assert answer["statusCode"] == 422
    assert field in [d["field"] for d in body_of(answer)["error"]["details"]]
    assert receive_all(stack) == []


def test_a_user_may_send_only_their_own_events(fns, stack):
    user = claims("t1", "u1", "[user]")
    result = body_of(post_events(fns, [EVERY_FAMILY[0], EVERY_FAMILY[2]], claims_=user))
    assert [r["accepted"] for r in result["results"]] == [True, False]
    assert result["results"][1]["errors"][0]["field"] == "events.1.wu_id"
    assert len(receive_all(stack)) == 1


def test_a_user_cannot_take_the_event_id_of_a_back_end_or_of_another_user(fns, stack):
    # Given a user who sends a visit under the id a back end uses for its order, and a second user the same id
    paid = next(e for e in EVERY_FAMILY if e["event_type"] == "order.paid")
    for user in ("u1", "u2"):
        visit = {**EVERY_FAMILY[0], "event_id": paid["event_id"], "wu_id": user}
        assert body_of(post_events(fns, [visit], claims_=claims("t1", user, "[user]")))["accepted"] == 1
    fns["consumer"]({"Records": receive_all(stack)})

    # When the back end sends the order
    post_events(fns, [paid])
    assert fns["consumer"]({"Records": receive_all(stack)}) == {"batchItemFailures": []}

    # Then all three count, each under its sender
    totals = stats(fns)["totals"]
    assert (totals["visits"], totals["visitors"], totals["purchases"]) == (2, 2, 1)
    records = body_of(fns["api"](http_event("GET", "/v1/stats/activity/42/records",
                                            "/v1/stats/{topic_type}/{topic_id}/records",
                                            query={"day": TODAY}, claims_=ADMIN)))["items"]
    assert sorted((r["origin"], r.get("sender") or "") for r in records) == [("api", ""), ("user", "u1"),
                                                                           ("user", "u2")]


def test_a_user_may_report_visits_and_shares_but_no_money_events(fns, stack):
    user = claims("t1", "u1", "[user]")
    paid = next(e for e in EVERY_FAMILY if e["event_type"] == "order.paid")
    result = body_of(post_events(fns, [{**paid, "wu_id": "u1"}], claims_=user))
    assert result["results"][0]["accepted"] is False
    assert [e["field"] for e in result["results"][0]["errors"]] == ["events.0.event_type"]
    assert receive_all(stack) == []


def test_delayed_events_wait_on_the_queue_or_in_the_scheduler(fns, stack):
    soon = {**EVERY_FAMILY[0], "event_id": "soon", "deliver_at": iso(now() + timedelta(minutes=5))}
    later = {**EVERY_FAMILY[0], "event_id": "later", "deliver_at": iso(now() + timedelta(hours=2))}

    result = body_of(post_events(fns, [soon, later]))
    again = body_of(post_events(fns, [later]))  # a retried request finds its schedule

    assert [r["delivery"] for r in result["results"]] == ["delayed", "scheduled"]
    assert again["results"][0]["delivery"] == "scheduled"
    sqs, url = boto3.client("sqs"), stack.queue_urls["StatsQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesDelayed"]) == ("0", "1")
    scheduler = boto3.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules()["Schedules"]]
    assert names == [delivery.schedule_name("t1", "app1", "later")]
    schedule = scheduler.get_schedule(Name=names[0])
    assert schedule["ScheduleExpression"] == f"at({later['deliver_at'][:19]})"
    assert schedule["Target"]["Arn"].endswith(":test-StatsQueue")
    message = json.loads(schedule["Target"]["Input"])
    assert message["tenant_id"] == "t1" and message["event"]["event_id"] == "later"


def test_stats_are_per_tenant_and_for_staff(fns, stack):
    post_events(fns, EVERY_FAMILY[:3])
    fns["consumer"]({"Records": receive_all(stack)})
    assert stats(fns)["totals"]["visits"] == 3
    assert stats(fns, claims_=claims("t2", "ops", "[admin]"))["totals"]["visits"] == 0
    answer = fns["api"](http_event("GET", "/v1/stats/activity/42", "/v1/stats/{topic_type}/{topic_id}",
                                   claims_=claims("t1", "u1", "[user]")))
    assert answer["statusCode"] == 403


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-11-20", "to": "2026-11-10"}, "query.from"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "query.from"),
    ({"from": "yesterday"}, "query.from"),
    ({"channel_type": "a#b"}, "query.channel_type"),
])
def test_bad_ranges_name_the_parameter(fns, query, field):
    answer = fns["api"](http_event("GET", "/v1/stats/activity/42", "/v1/stats/{topic_type}/{topic_id}",
                                   query=query, claims_=ADMIN))
    assert answer["statusCode"] == 422
    assert field in [d["field"] for d in body_of(answer)["error"]["details"]]


def test_chart_draws_the_daily_series(fns, stack):
    post_events(fns, EVERY_FAMILY)
    fns["consumer"]({"Records": receive_all(stack)})
    answer = fns["api"](sample_event("stats_api/get_chart.json"))
    assert answer["statusCode"] == 200 and answer["headers"]["Content-Type"] == "image/svg+xml"
    assert answer["body"].startswith("<svg") and answer["body"].count("<rect") == 30
    assert f"<title>{TODAY}: 3</title>" in answer["body"]
    bad = fns["api"](http_event("GET", "/v1/stats/activity/42/chart.svg", "/v1/stats/{topic_type}/{topic_id}/chart.svg",
                                query={"metric": "revenue"}, claims_=ADMIN))
    assert bad["statusCode"] == 422 and body_of(bad)["error"]["details"][0]["field"] == "query.metric"


def test_operation_records_list_what_was_counted(fns, stack):
    post_events(fns, EVERY_FAMILY)
    records = receive_all(stack)
    fns["consumer"]({"Records": records})
    fns["consumer"]({"Records": records})
    route = "/v1/stats/{topic_type}/{topic_id}/records"
    first = body_of(fns["api"](http_event("GET", "/v1/stats/activity/42/records", route,
                                          query={"day": TODAY, "limit": "20"}, claims_=ADMIN)))
    rest = body_of(fns["api"](http_event("GET", "/v1/stats/activity/42/records", route,
                                         query={"day": TODAY, "next_token": first["next_token"]}, claims_=ADMIN)))
    listed = first["items"] + rest["items"]
    on_activity = [e for e in EVERY_FAMILY if e["topic_type"] == "activity"]
    assert sorted(r["event_id"] for r in listed) == sorted(e["event_id"] for e in on_activity)
    assert {r["origin"] for r in listed} == {"api"}
    forged = fns["api"](http_event("GET", "/v1/stats/page/7/records", route,
                                   query={"day": TODAY, "next_token": first["next_token"]}, claims_=ADMIN))
    assert forged["statusCode"] == 400


def test_a_user_may_send_only_so_many_events_per_window(fns, stack, monkeypatch):
    # Given a limit of 5 events per user token and day (the template says 120 a minute)
    monkeypatch.setenv("RATE_LIMIT_EVENTS", "5")
    monkeypatch.setenv("RATE_LIMIT_EVENTS_WINDOW_SECONDS", "86400")
    user = claims("t1", "u1", "[user]")
    visits = [{**EVERY_FAMILY[0], "event_id": f"v{i}", "wu_id": "u1"} for i in range(6)]
    assert body_of(post_events(fns, visits[:3], claims_=user))["accepted"] == 3

    # When a batch would pass the limit (events count, not requests), Then 429 and nothing is queued
    refused = post_events(fns, visits[3:6], claims_=user)
    assert refused["statusCode"] == 429 and int(refused["headers"]["Retry-After"]) >= 1
    assert len(receive_all(stack)) == 3
    # A batch that fits still goes
    assert body_of(post_events(fns, visits[3:5], claims_=user))["accepted"] == 2
    assert post_events(fns, visits[5:6], claims_=user)["statusCode"] == 429

    # Another user and a back end are not held back by it
    theirs = [{**visit, "wu_id": "u2"} for visit in visits[:5]]
    assert body_of(post_events(fns, theirs, claims_=claims("t1", "u2", "[user]")))["accepted"] == 5
    assert body_of(post_events(fns, [{**v, "event_id": f"s{i}"} for i, v in enumerate(visits)]))["accepted"] == 6


def test_a_consumer_running_out_of_time_leaves_the_rest_of_the_batch_for_redelivery(fns, stack):
    post_events(fns, EVERY_FAMILY)
    records = receive_all(stack)
    consumer = fns["consumer"]
    # Given an invocation with time for the flush and three records, then less
    enough = int(consumer.module.processor.worst_case(3) * 1000)
    context = RunningOutContext(consumer.spec, enough, enough, enough, enough - 4000)
    # When it takes the batch, then it parses three records only and reports the others
    answer = consumer({"Records": records}, context)
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [r["messageId"] for r in records[3:]]
    # And the redelivered rest completes the totals exactly
    assert consumer({"Records": records[3:]}) == {"batchItemFailures": []}
    assert stats(fns)["totals"] == full(EXPECTED_ACTIVITY)
