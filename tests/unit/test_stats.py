"""Statistics domain: event types and their metrics, domain-event mapping, transaction planning, and the
exactly-once writer on moto (single thread: concurrency is tested over HTTP in tests/e2e)."""

from __future__ import annotations

import json
import random
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from pydantic import ValidationError

from local_stack.template import load
from marketing.stats import dal, delivery, service
from marketing.stats.chart import bar_chart
from marketing.stats.mapping import DOMAIN_EVENTS, from_domain_event
from marketing.stats.metrics import METRICS, RULES, effect_of
from marketing.stats.models import EVENT_ADAPTER, EVENT_TYPES
from tests.support import sample_event

EVERY_FAMILY = json.loads(sample_event("stats_intake/post_events_every_family.json")["body"])["events"]


def event(event_type="activity.visit", **fields):
    return EVENT_ADAPTER.validate_python({"event_id": "e1", "event_type": event_type, "topic_type": "activity",
                                          "topic_id": "42", "wu_id": "u1", **fields})


def test_every_event_type_has_a_rule_and_the_sample_covers_every_type():
    assert set(RULES) == set(EVENT_TYPES)
    assert {e["event_type"] for e in EVERY_FAMILY} == set(EVENT_TYPES)
    assert all(t.count(".") == 1 and t == t.lower() for t in EVENT_TYPES)


def test_every_metric_an_event_can_move_is_catalogued():
    produced = set()
    for raw in EVERY_FAMILY:
        sample = EVENT_ADAPTER.validate_python(raw)
        flags = {name: True for name, f in type(sample.payload).model_fields.items() if f.annotation is bool}
        for variant in (sample, sample.model_copy(update={"payload": sample.payload.model_copy(update=flags)})):
            effect = effect_of(variant)
            produced |= set(effect.counts) | {metric for metric, _ in effect.uniques}
    produced |= {"vip_new_memberships"}  # the flags above make every VIP card a renewal
    produced |= {metric for join in ("opened", "joined", "succeeded")  # the sample shows one joinType
                 for metric in effect_of(event("share.visit", payload={"join_type": join})).counts}
    assert produced <= set(METRICS)
    assert set(METRICS) - produced == set()  # every catalogued metric can move


def test_refunds_and_cancellations_are_their_own_metrics():
    refund = effect_of(event("order.refunded", payload={"refund_id": "r", "amount": 500, "member": True}))
    assert refund.counts == {"refunds": 1, "refund_amount": 500, "member_refunds": 1, "member_refund_amount": 500}
    assert not {"purchases", "purchase_amount"} & set(refund.counts)
    cancelled = effect_of(event("order.payment_cancelled", payload={"order_id": "o", "amount": 700}))
    assert cancelled.counts == {"cancelled_payments": 1, "cancelled_amount": 700}


def test_uniques_count_the_user_else_the_session_else_nobody():
    assert effect_of(event()).uniques == [("visitors", "u:u1")]
    assert effect_of(event(wu_id=None, session_str="s9")).uniques == [("visitors", "s:s9")]
    assert effect_of(event(wu_id=None)).uniques == []


@pytest.mark.parametrize(("raw", "field"), [
    ({"event_type": "order.paid", "payload": {"order_id": "o", "amount": 1.5}}, "amount"),
    ({"ctime": "2026-11-23T10:00:00"}, "ctime"),  # a time without zone is ambiguous
    ({"topic_type": "Activity"}, "topic_type"),
    ({"payload": {"unexpected": 1}}, "unexpected"),
])
def test_event_validation(raw, field):
    with pytest.raises(ValidationError) as caught:
        event(**raw)
    assert field in str(caught.value)


def test_seed_style_millisecond_ctime_is_accepted_as_utc():
    assert event(ctime=1795000000000).day == "2026-11-18"


def envelope(detail_type, **detail):
    return {"detail-type": detail_type, "source": "marketing.x", "time": "2026-11-23T10:00:00Z",
            "detail": {"event_id": "d1", "tenant_id": "t1", "app_id": "a", "occurred_at": "2026-11-23T10:00:00.000Z",
                       **detail}}


@pytest.mark.parametrize(("detail_type", "detail", "expected"), [
    ("track.visit", {"user_id": "u2", "referrer": "u1", "promcode": "ABCDEFGH"},
     ("share.visit", "referrer", "u1", {"share_visits": 1})),
    ("track.new_user", {"user_id": "u2", "referrer": "u1"},
     ("share.visit", "referrer", "u1", {"share_visits": 1, "new_users": 1})),
    ("code.redeemed", {"campaign_id": "c1", "reward_id": "r1", "user_id": "u2", "grant_id": "g1", "amount": 300},
     ("coupon.redeemed", "campaign", "c1", {"redemptions": 1, "redemption_discount_amount": 300})),
    ("code.revoked", {"campaign_id": None, "reward_id": "r1", "batch_id": "b"},
     ("coupon.revoked", "reward", "r1", {"revocations": 1})),
    ("cps.order_paid", {"platform": "jd", "order_id": "o1", "promoter_id": "p1", "buyer_id": "u3", "pay_price": 990},
     ("order.paid", "promoter", "p1", {"purchases": 1, "purchased_quantity": 1, "purchase_amount": 990,
                                       "share_purchases": 1})),
    ("cps.order_refunded", {"platform": "jd", "order_id": "o1", "promoter_id": "p1", "buyer_id": "u3",
                            "pay_price": 990, "refund_price": 500},
     ("order.refunded", "promoter", "p1", {"refunds": 1, "refund_amount": 500})),
    ("task.completed", {"task_id": "t1", "campaign_id": "c1", "user_id": "u2", "period": "2026-11"},
     ("activity.task_completed", "campaign", "c1", {"tasks_completed": 1})),
])
def test_domain_events_map_onto_the_families(detail_type, detail, expected):
    scope, mapped = from_domain_event(envelope(detail_type, **detail))
    assert scope == "t1#A#a" and mapped.event_id == "d1" and mapped.day == "2026-11-23"
    assert (mapped.event_type, mapped.topic_type, mapped.topic_id, effect_of(mapped).counts) == expected
    assert detail_type in DOMAIN_EVENTS


def test_the_template_routes_exactly_the_mapped_domain_events():
    rule = load()["Resources"]["StatsDomainEventsRule"]["Properties"]["EventPattern"]
    assert sorted(rule["detail-type"]) == sorted(DOMAIN_EVENTS)


def test_a_cps_order_without_promoter_counts_on_its_platform_and_odd_ids_are_digested():
    _, paid = from_domain_event(envelope("cps.order_paid", platform="meituan", order_id="o1", promoter_id=None,
                                              buyer_id="u3", pay_price=990))
    assert (paid.topic_type, paid.topic_id, paid.channel_type, paid.payload.via_share) == \
        ("cps_platform", "meituan", "meituan", False)
    odd = envelope("track.visit", user_id="u2", referrer="u1")
    odd["detail"]["event_id"] = "cps/meituan#o1 paid"
    _, first = from_domain_event(odd)
    _, again = from_domain_event(odd)
    assert first.event_id == again.event_id and first.event_id.startswith("sha256-")


def test_an_unmapped_or_incomplete_domain_event_is_refused():
    with pytest.raises(ValueError):
        from_domain_event(envelope("grant.rolled_back", grant_id="g"))
    with pytest.raises(ValidationError):
        from_domain_event(envelope("cps.order_paid", platform="jd", promoter_id="p1"))  # no order, no price
    for broken in ({"app_id": None}, {"app_id": "a#b"}, {"tenant_id": ""}):  # no app or tenant to count in
        message = envelope("track.visit", user_id="u2", referrer="u1")
        message["detail"].update(broken)
        with pytest.raises(ValueError):
            from_domain_event(message)


def test_delays_up_to_fifteen_minutes_use_sqs():
    at = datetime(2026, 11, 23, tzinfo=UTC)
    assert delivery.delay_of(None, at) == 0
    assert delivery.delay_of(at - timedelta(seconds=5), at) == 0
    assert delivery.delay_of(at + timedelta(seconds=899.2), at) == 900 == delivery.SQS_MAX_DELAY
    name = delivery.schedule_name("t1", "a1", "e")
    assert name == delivery.schedule_name("t1", "a1", "e")
    assert name not in {delivery.schedule_name("t2", "a1", "e"), delivery.schedule_name("t1", "a2", "e"),
                        delivery.schedule_name("t1", "a1", "e", "u1")}
    assert len(delivery.schedule_name("t1", "a1", "e" * 128)) <= 64


def tallies(n, topics=3, users=5, seed=1):
    rng = random.Random(seed)
    made = []
    for i in range(n):
        raw = {"event_id": f"e{i}", "event_type": "activity.visit", "topic_type": "activity",
               "topic_id": f"a{rng.randrange(topics)}", "wu_id": f"u{rng.randrange(users)}",
               "channel_type": rng.choice(["wx", "app"])}
        made.append(service.tally("t1", "api", EVENT_ADAPTER.validate_python(raw)))
    return made


def test_a_claim_writes_records_markers_and_one_journal_but_no_counter():
    plan = dal._plan(tallies(30, topics=2), set(), {}, "J")
    assert not [a for a in plan.actions if "Update" in a]  # counters move only when the journal is applied
    assert sum(1 for a in plan.actions if a["Put"]["Item"]["sk"] == "EVENT") == 30
    assert all(a["Put"]["Item"]["journal"] == "J" for a in plan.actions if a["Put"]["Item"]["sk"] == "EVENT")
    journals = [a["Put"]["Item"] for a in plan.actions if a["Put"]["Item"]["sk"] == "JOURNAL"]
    assert len(journals) == 1 and len(journals[0]["deltas"]) == 2 * 3  # 2 topics x (channels *, wx, app)
    assert sum(d["visits"] for e, d in journals[0]["deltas"].items() if "|C#*#" in e) == 30


def test_chunks_stay_within_the_transaction_limit_and_one_scope():
    made = tallies(500, topics=50, users=400)
    made[250].scope = "t1#A#app2"
    chunks = dal._chunks(made, set())
    assert sum(len(c) for c in chunks) == 500
    assert all(len(dal._plan(c, set(), {}, "J").actions) <= dal.MAX_ACTIONS for c in chunks)
    assert all(len({t.scope for t in c}) == 1 for c in chunks)
    assert len(chunks) < 500 / 20


class CounterUpdates:
    """Counts each counter item's updates, and can make a transaction fail as a dying container would."""

    def __init__(self, crash_at: int | None = None):
        self.per_item: Counter = Counter()
        self.applied = 0  # transactions that updated counters
        self.crash_at = crash_at

    def __call__(self, params, **_):
        updates = [a["Update"]["Key"] for a in params["TransactItems"] if "Update" in a]
        counters = [(k["pk"], k["sk"]) for k in updates if k["sk"].startswith("C#")]
        if not counters:
            return
        if self.crash_at is not None and self.applied == self.crash_at:
            raise RuntimeError("the container died")
        self.applied += 1
        self.per_item.update(counters)


@contextmanager
def watching(crash_at: int | None = None):
    watcher = CounterUpdates(crash_at)
    events = dal.dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", watcher)
    try:
        yield watcher
    finally:
        events.unregister("provide-client-params.dynamodb.TransactWriteItems", watcher)


def test_each_counter_item_takes_one_update_per_batch(stack):
    made = tallies(1000, topics=50, users=400)
    with watching() as updates:
        assert dal.count(made) == (1000, [])
    assert set(updates.per_item.values()) == {1}
    assert len(updates.per_item) == 50 * 3  # every topic's all-channel, wx and app items
    assert table_counts(stack)["visits"] == 1000


@pytest.mark.parametrize("crash_at", [0, 1])  # before any counter moved; after the first transaction applied
def test_a_batch_whose_container_died_between_claim_and_apply_is_finished_by_its_redelivery(stack, crash_at):
    # Given a batch claimed whole, whose container died while applying its journals
    made = tallies(400, topics=100, users=100)  # 300 counter items: several transactions apply them
    with watching(crash_at) as updates, pytest.raises(RuntimeError):
        dal.count(made)
    assert updates.applied == crash_at
    assert table_counts(stack).get("visits", 0) < 400

    # When SQS delivers the batch again, in another order, then a third time
    again = made[:]
    random.Random(3).shuffle(again)
    assert dal.count(again) == (0, [])  # nothing new is claimed: the journals are finished
    assert dal.count(made) == (0, [])

    # Then every event counts once, and uniques stay exact
    totals = table_counts(stack)
    assert totals["visits"] == 400
    assert totals["visitors"] == len({(t.topic_id, s) for t in made for _, s in t.uniques})


def test_an_event_redelivered_alone_finishes_its_own_journal(stack):
    made = tallies(40, topics=1)  # one chunk, one journal
    with watching(crash_at=0), pytest.raises(RuntimeError):
        dal.count(made)
    assert "visits" not in table_counts(stack)
    assert dal.count([made[7]]) == (0, [])
    assert table_counts(stack)["visits"] == 40


def table_counts(stack, pk_prefix="T#t1#STATS#activity#"):
    items = boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]
    totals = {}
    for item in items:
        if item["pk"].startswith(pk_prefix) and item["sk"].startswith("C#*#"):
            for k, v in item.items():
                if k not in ("pk", "sk"):
                    totals[k] = totals.get(k, 0) + int(v)
    return totals


def test_a_partly_counted_batch_counts_only_the_rest(stack):
    # Given 300 events over few users (several transactions), of which the first 120 were counted already
    made = tallies(300)
    assert dal.count(made[:120]) == (120, [])

    # When the whole batch comes again, shuffled
    again = made[:]
    random.Random(2).shuffle(again)
    counted, failed = dal.count(again)

    # Then only the other 180 count, and uniques stay exact: 5 users, on 3 topics and 2 channels at most
    assert (counted, failed) == (180, [])
    totals = table_counts(stack)
    assert totals["visits"] == 300
    expected_visitors = len({(t.topic_id, s) for t in made for _, s in t.uniques})
    assert totals["visitors"] == expected_visitors <= 15


def test_an_event_that_breaks_its_transaction_is_isolated(stack):
    made = tallies(10)
    made[4].event["oversized"] = "x" * 410_000  # larger than an item may be: DynamoDB refuses the put
    counted, failed = dal.count(made)
    assert counted == 9 and [t.event_id for t in failed] == ["e4"]
    assert table_counts(stack)["visits"] == 9


def test_a_journal_a_record_names_but_not_yet_visible_is_never_taken_for_applied(stack):
    made = tallies(10, topics=1)
    with watching(crash_at=0), pytest.raises(RuntimeError):
        dal.count(made)
    table = boto3.resource("dynamodb").Table(stack.ref("Table"))
    named = table.get_item(Key=made[0].record_key)["Item"]["journal"]
    hidden = table.get_item(Key={"pk": named, "sk": "JOURNAL"})["Item"]
    table.delete_item(Key={"pk": named, "sk": "JOURNAL"})  # as a read racing its transaction might see it

    counted, failed = dal.count([made[0]])
    assert (counted, failed) == (0, [made[0]])  # delivered again, not dropped as counted

    table.put_item(Item=hidden)
    assert dal.count([made[0]]) == (0, [])
    assert table_counts(stack)["visits"] == 10


def test_chart_escapes_its_labels():
    svg = bar_chart("<b>&", [("d1", 0), ("d2", 5)])
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and svg.count("<rect") == 2


def test_a_cancelled_transaction_changes_nothing(stack):
    # The counting relies on it; local_stack.moto_fixes backs up only the touched items, so check it here.
    table = boto3.resource("dynamodb").Table(stack.ref("Table"))
    table.put_item(Item={"pk": "p", "sk": "counter", "n": 1})
    table.put_item(Item={"pk": "p", "sk": "taken"})
    actions = [{"Update": {"Key": {"pk": "p", "sk": "counter"}, "UpdateExpression": "ADD n :one",
                           "ExpressionAttributeValues": {":one": 1}}},
               {"Put": {"Item": {"pk": "p", "sk": "new"}}},
               {"Put": {"Item": {"pk": "p", "sk": "taken", "x": 1}, "ConditionExpression": "attribute_not_exists(pk)"}}]
    with pytest.raises(Exception, match="TransactionCanceled"):
        dal.dynamo.transact_write(actions)
    assert sorted((i["sk"], int(i.get("n", 0))) for i in table.scan()["Items"]) == [("counter", 1), ("taken", 0)]


def refund_step(event_id: str, refund_price: int, day: str = "2026-11-23") -> dal.Tally:
    message = envelope("cps.order_refunded", platform="meituan", order_id="o1", promoter_id="p1", buyer_id="u3",
                       pay_price=990, refund_price=refund_price)
    message["detail"]["event_id"] = event_id
    message["detail"]["occurred_at"] = f"{day}T10:00:00.000Z"
    return service.parse_message(json.dumps(message))


def test_cumulative_cps_refunds_count_their_increase_once_in_any_order(stack):
    # Given an order refunded in two steps (500, then in full: 990 so far), delivered late, repeated, mixed
    partial, full = refund_step("cps:meituan:o1:refund:500", 500), refund_step("cps:meituan:o1:refund:full", 990)
    assert dal.count([full]) == (1, [])
    assert dal.count([partial, full, partial]) == (1, [])

    # Then the order counts as one refund of 990, not 1,490
    totals = table_counts(stack, "T#t1#A#a#STATS#promoter#p1")
    assert (totals["refunds"], totals["refund_amount"], totals["refunders"]) == (1, 990, 1)


def test_refund_steps_in_one_batch_chain_their_levels(stack):
    steps = [refund_step("s-300", 300), refund_step("s-700", 700), refund_step("s-full", 990)]
    assert dal.count(list(reversed(steps))) == (3, [])
    totals = table_counts(stack, "T#t1#A#a#STATS#promoter#p1")
    assert (totals["refunds"], totals["refund_amount"]) == (1, 990)
    assert dal.count([refund_step("s-late", 1200)]) == (1, [])  # a later, larger total adds its increase
    assert table_counts(stack, "T#t1#A#a#STATS#promoter#p1")["refund_amount"] == 1200
