"""Statistics over HTTP against the local stack: every family counted exactly, domain events routed by the
template's rule, repeats and concurrent deliveries counted once, a poison message parked in the DLQ."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import requests

from marketing.stats import dal, journal, service
from marketing.stats.models import EVENT_ADAPTER
from tests.handlers.test_stats import EVERY_FAMILY, EXPECTED_ACTIVITY, EXPECTED_PAGE, EXPECTED_WX, full


def wait_for(check, timeout: float = 40.0):
    """Poll `check` until it answers something truthy (or time runs out: answers the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def totals(api, topic: str, **query) -> dict:
    answer = api.get(f"/v1/stats/{topic}", params=query)
    assert answer.status_code == 200, answer.text
    return answer.json()["totals"]


def queue_idle(local_stack) -> bool:
    attributes = local_stack.client("sqs").get_queue_attributes(
        QueueUrl=local_stack.outputs["StatsQueue"], AttributeNames=["All"])["Attributes"]
    return all(attributes[f"ApproximateNumberOf{k}"] == "0" for k in ("Messages", "MessagesNotVisible",
                                                                         "MessagesDelayed"))


def domain_event(tenant: str, detail_type: str, source: str, event_id: str, **fields) -> dict:
    detail = {"event_id": event_id, "tenant_id": tenant, "app_id": "app1",
              "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), **fields}
    return {"Source": f"marketing.{source}", "DetailType": detail_type, "Detail": json.dumps(detail)}


def invoke_consumer(local_stack, messages: list[str], seed: int) -> dict:
    """The stats consumer, invoked with `messages` as one SQS batch in an order of its own."""
    order = random.Random(seed).sample(messages, len(messages))
    records = [{"messageId": f"{seed}-{i}", "receiptHandle": "x", "body": body, "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:local-StatsQueue", "awsRegion": "us-east-1"}
               for i, body in enumerate(order)]
    return requests.post(f"{local_stack.api_url}/_local/invoke/StatsConsumerFunction",
                         json={"Records": records}, timeout=120).json()


def test_every_family_and_the_domain_events_are_counted_exactly(local_stack, tenant):
    backend = local_stack.api(tenant, sub="backend", roles="service")
    ops = local_stack.api(tenant)

    # Given the sample batch with every event type, posted by a back end
    answer = backend.post("/v1/events", {"events": EVERY_FAMILY})
    assert answer.status_code == 202 and answer.json()["accepted"] == len(EVERY_FAMILY)

    # And the other capabilities' facts: a real visit through the Track API, the rest put on the bus
    assert backend.post("/tracks", {"user_id": "carol", "track_type": 1, "referrer": "alice"}).status_code == 201
    entries = [
        domain_event(tenant, "code.redeemed", "rewards", "red-1", code_suffix="A1B2", batch_id="b1", reward_id="r1",
                     campaign_id="c1", user_id="u1", grant_id="g1", reward_type="coupon", amount=300),
        domain_event(tenant, "code.revoked", "rewards", "rev-1", code_suffix="A1B2", batch_id="b1", reward_id="r1",
                     campaign_id="c1"),
        domain_event(tenant, "task.completed", "campaigns", "task-1", task_id="t1", campaign_id="c1", user_id="u1",
                     period="2026-11", completion_id="k1"),
        domain_event(tenant, "cps.order_paid", "cps", "paid-1", platform="jd", order_id="o1", pid="p", promoter_id="p1",
                     buyer_id="u9", pay_price=990, commission=50, title="t"),
        domain_event(tenant, "cps.order_refunded", "cps", "refund-1", platform="jd", order_id="o1", pid="p",
                     promoter_id="p1", buyer_id="u9", pay_price=990, commission=50, title="t", refund_price=990),
        domain_event(tenant, "grant.rolled_back", "rewards", "rb-1", grant_id="g1", reward_id="r1", user_id="u1",
                     campaign_id="c1"),  # not counted: the rule does not route it
    ]
    bus = local_stack.outputs["EventBus"]
    assert local_stack.client("events").put_events(
        Entries=[{**e, "EventBusName": bus} for e in entries])["FailedEntryCount"] == 0

    # Then, once the consumer has run, every total is exact, uniques included
    expected = full(EXPECTED_ACTIVITY)
    wait_for(lambda: totals(ops, "activity/42") == expected)
    assert totals(ops, "activity/42") == expected
    assert totals(ops, "page/7") == full(EXPECTED_PAGE)
    assert totals(ops, "activity/42", channel_type="wx") == full(EXPECTED_WX)
    campaign = full({"redemptions": 1, "redeemers": 1, "redemption_discount_amount": 300, "revocations": 1,
                     "tasks_completed": 1, "task_completers": 1})
    wait_for(lambda: totals(ops, "campaign/c1") == campaign)
    assert totals(ops, "campaign/c1") == campaign
    promoter = full({"purchases": 1, "purchased_quantity": 1, "purchase_amount": 990, "buyers": 1,
                     "share_purchases": 1, "share_buyers": 1, "refunds": 1, "refund_amount": 990, "refunders": 1})
    assert wait_for(lambda: totals(ops, "promoter/p1", channel_type="jd") == promoter)
    assert totals(ops, "promoter/p1") == promoter
    assert wait_for(lambda: totals(ops, "referrer/alice")["share_visits"] == 1)
    assert totals(ops, "referrer/alice") == full({"share_visits": 1, "share_visitors": 1})

    # And the chart and the day's operation records show the same
    chart = ops.get("/v1/stats/activity/42/chart.svg", params={"metric": "purchase_amount"})
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert f"<title>{time.strftime('%Y-%m-%d', time.gmtime())}: 2980</title>" in chart.text
    day = time.strftime("%Y-%m-%d", time.gmtime())
    records = ops.get("/v1/stats/campaign/c1/records", params={"day": day}).json()["items"]
    assert sorted(r["event_id"] for r in records) == ["red-1", "rev-1", "task-1"]
    assert local_stack.api(tenant + "-other").get("/v1/stats/activity/42").json()["totals"] == full({})


def test_reposted_events_are_counted_once_even_posted_concurrently(local_stack, tenant):
    backend = local_stack.api(tenant, sub="backend", roles="service")
    ops = local_stack.api(tenant)
    first_five = EVERY_FAMILY[:5]
    assert backend.post("/v1/events", {"events": first_five}).json()["accepted"] == 5
    expected = full({"visits": 3, "visitors": 2, "shares": 1, "sharers": 1, "h5_visits": 1, "h5_visitors": 1})
    assert wait_for(lambda: totals(ops, "activity/42") == expected)

    # When the same events are posted again, ten times at once
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: requests.post(
            f"{backend.base}/v1/events", json={"events": first_five},
            headers={"Authorization": f"Bearer {backend.token}"}, timeout=60), range(10)))
    assert {a.status_code for a in answers} == {202}

    # Then, once the queue is drained, nothing moved
    assert wait_for(lambda: queue_idle(local_stack))
    assert totals(ops, "activity/42") == expected
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert len(ops.get("/v1/stats/activity/42/records", params={"day": day}).json()["items"]) == 5


def test_concurrent_consumers_count_overlapping_batches_once(local_stack, tenant):
    # Given 60 events of 4 users, each delivered 8 times: 8 batches in different orders, to 8 containers at once
    messages = [json.dumps({"tenant_id": tenant, "app_id": "app1", "event": {
        "event_id": f"c-{i}", "event_type": "page.visit", "topic_type": "page", "topic_id": "race",
        "wu_id": f"u{i % 4}", "channel_type": "wx" if i % 2 else "app"}}) for i in range(60)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda seed: invoke_consumer(local_stack, messages, seed), range(8)))

    # Then every event counted once, and each user once per day, overall and per channel
    assert results == [{"batchItemFailures": []}] * 8
    ops = local_stack.api(tenant)
    assert totals(ops, "page/race") == full({"visits": 60, "visitors": 4})
    assert totals(ops, "page/race", channel_type="wx") == full({"visits": 30, "visitors": 2})


def test_journals_left_by_a_dead_consumer_are_finished_once_by_concurrent_redeliveries(local_stack, tenant):
    # Given a batch that a consumer claimed (records, markers and journals written) and then died applying
    raw = [{"event_id": f"j-{i}", "event_type": "page.visit", "topic_type": "page", "topic_id": f"dead{i % 40}",
            "wu_id": f"u{i % 7}", "channel_type": "wx" if i % 2 else "app"} for i in range(200)]
    tallies = sorted((service.tally(f"{tenant}#A#app1", "api", EVENT_ADAPTER.validate_python(e)) for e in raw),
                     key=lambda t: t.topic_id)
    ddb = boto3.resource("dynamodb", endpoint_url=local_stack.aws_url, region_name="us-east-1",
                         aws_access_key_id="local", aws_secret_access_key="local").meta.client
    table_name = local_stack.outputs["Table"]
    for chunk in dal._chunks(tallies, set()):
        plan = dal._plan(chunk, set(), {}, journal.new_key(f"{tenant}#A#app1"))
        ddb.transact_write_items(TransactItems=[{kind: {"TableName": table_name, **body}}
                                                for action in plan.actions for kind, body in action.items()])
    ops = local_stack.api(tenant)
    assert totals(ops, "page/dead0")["visits"] == 0

    # When SQS delivers it again to 8 containers at once, each in its own order
    messages = [json.dumps({"tenant_id": tenant, "app_id": "app1", "event": e}) for e in raw]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda seed: invoke_consumer(local_stack, messages, seed), range(8)))

    # Then each journal entry was applied once: every topic counts its 5 events and their distinct users
    assert results == [{"batchItemFailures": []}] * 8
    for topic in range(40):
        users = len({i % 7 for i in range(topic, 200, 40)})
        assert totals(ops, f"page/dead{topic}") == full({"visits": 5, "visitors": users}), topic


def test_a_poison_message_fails_alone_and_reaches_the_dead_letter_queue(local_stack, tenant):
    sqs = local_stack.client("sqs")
    poison = f"poison for {tenant}: not an event"
    good = [json.dumps({"tenant_id": tenant, "app_id": "app1", "event": {**EVERY_FAMILY[0], "event_id": f"ok-{i}"}})
            for i in range(3)]

    # Given a batch with a poison message among good ones, put on the stats queue
    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate([good[0], poison, good[1], good[2]])]
    assert not sqs.send_message_batch(QueueUrl=local_stack.outputs["StatsQueue"], Entries=entries).get("Failed")

    # Then the good ones are counted
    ops = local_stack.api(tenant)
    assert wait_for(lambda: totals(ops, "activity/42")["visits"] == 3)

    # And the poison message, after 5 receives, waits in the DLQ, where the alarm watches
    def in_dlq() -> bool:
        answer = sqs.receive_message(QueueUrl=local_stack.outputs["StatsDeadLetterQueue"], MaxNumberOfMessages=10,
                                     AttributeNames=["All"], VisibilityTimeout=0)
        return any(m["Body"] == poison for m in answer.get("Messages", []))

    assert wait_for(in_dlq, timeout=60)
    assert totals(ops, "activity/42")["visits"] == 3 and totals(ops, "activity/42")["visitors"] == 1


def test_a_delayed_event_counts_only_after_its_delay(local_stack, tenant):
    backend = local_stack.api(tenant, sub="backend", roles="service")
    ops = local_stack.api(tenant)
    at = time.time() + 4
    deliver_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    answer = backend.post("/v1/events", {"events": [{**EVERY_FAMILY[0], "deliver_at": deliver_at}]}).json()
    assert answer["results"][0]["delivery"] == "delayed"

    time.sleep(1.5)  # the consumer would have counted an undelayed event by now
    assert totals(ops, "activity/42")["visits"] == 0
    assert wait_for(lambda: totals(ops, "activity/42")["visits"] == 1)
    assert time.time() >= at - 1  # SQS delays in whole seconds


def seed_messages(ctime_ms: int) -> list[dict]:
    """One message per section of realtime-stats-mq-spec.md, as its tables define them: the common parameters
    under the seed's names with integer ids and its defaults for "none" (`qrCode` empty), the exchange it is
    sent to, its own fields beside them (or under `data` with a `recordId`). Only the facts the seed's
    consumer looked up in its own tables (amounts of 2.4, 2.5, 2.10) are added."""
    common = {"sessionStr": "s-77", "parentTopicType": "page", "parentTopicId": 7, "topicType": "activity",
              "topicId": 42, "qrCode": "", "wuId": 1001, "channelType": "wx", "ctime": ctime_ms}
    page = {**common, "topicType": "page", "topicId": 7, "parentTopicType": "", "parentTopicId": 0}
    return [
        {**page, "exchange": "ex.data.load.visit", "userRecordId": 501},  # 1.1
        {**page, "exchange": "ex.data.load.share"},  # 1.2
        {**common, "exchange": "ex.data.load.act.date.visit", "userRecordId": 502},  # 2.1
        {**common, "exchange": "ex.data.load.act.date.share"},  # 2.2
        {**common, "exchange": "ex.h5.activity.visit", "channelCode": "h5c"},  # 2.3
        {**common, "exchange": "ex.order.pay.success", "recordId": 9001, "data": {"orderId": 70001, "amount": 1990}},
        {**common, "exchange": "ex.order.pay.cancel", "recordId": 9002, "data": {"orderId": 70002, "amount": 500}},
        {**common, "exchange": "ex.vip.card.received", "recordId": 9003, "data": {"receiveId": 80001}},  # 2.6
        {**common, "exchange": "ex.cash.voucher.receive.success", "recordId": 9004, "data": {"actReceiveId": 80002}},
        {**common, "exchange": "ex.card.off", "recordId": 9005, "data": {"offId": 80003}},  # 2.8
        {**common, "exchange": "ex.card.off.revoke", "recordId": 9006, "data": {"revokeId": 80004}},  # 2.9
        {**common, "exchange": "ex.order.activity.refund.success", "recordId": 9007,
         "data": {"refundId": 80005, "amount": 300}},  # 2.10 (3.10 in the seed)
        {**common, "exchange": "ex.card.code.overdue", "recordId": 9008, "data": {"receiveId": 80006}},  # 2.11
        {**common, "exchange": "ex.cash.voucher.expire", "actReceiveId": 80007, "redPackNum": 2,
         "orderId": 70001},  # 2.12
        {**common, "exchange": "ex.act.join.lottery"},  # 2.13
        {**common, "exchange": "ex.visit.by.share", "joinType": 1},  # 2.14
        *({**common, "exchange": "ex.act.group.join", "joinType": j} for j in (1, 2, 3)),  # 2.15
    ]


def test_a_producer_following_the_seed_spec_is_counted_once(local_stack, tenant):
    backend = local_stack.api(tenant, sub="backend", roles="service")
    ops = local_stack.api(tenant)
    messages = seed_messages(int(time.time() * 1000))

    # When a producer posts the seed's messages as they are, twice (the second time every one is a repeat)
    for _ in range(2):
        answer = backend.post("/v1/events", {"events": messages})
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == len(messages), answer.json()

    # Then each moves its metrics once, under our names, on its topic and channel
    expected_activity = {
        "visits": 1, "visitors": 1, "shares": 1, "sharers": 1, "h5_visits": 1, "h5_visitors": 1, "purchases": 1,
        "purchased_quantity": 1, "purchase_amount": 1990, "buyers": 1, "cancelled_payments": 1,
        "cancelled_amount": 500, "vip_cards": 1, "vip_card_receivers": 1, "vip_new_memberships": 1,
        "red_packet_receipts": 1, "red_packets": 1, "red_packet_receivers": 1, "redemptions": 1, "redeemers": 1,
        "revocations": 1, "revokers": 1, "refunds": 1, "refund_amount": 300, "refunders": 1, "expired_coupons": 1,
        "expired_red_packets": 2, "expired_red_packet_holders": 1, "lottery_entries": 1, "lottery_entrants": 1,
        "share_visits": 1, "share_visitors": 1, "share_visits_opened": 1, "groups_opened": 1, "group_joins": 1,
        "groups_succeeded": 1}

    def moved(topic):
        return {k: v for k, v in totals(ops, topic, channel_type="wx").items() if v}

    wait_for(lambda: moved("activity/42") == expected_activity)
    assert wait_for(lambda: queue_idle(local_stack))
    assert moved("activity/42") == expected_activity
    assert moved("page/7") == {"visits": 1, "visitors": 1, "shares": 1, "sharers": 1}
    # And the records keep the event under our names, with the ids as text
    records = ops.get("/v1/stats/activity/42/records", params={"day": time.strftime("%Y-%m-%d", time.gmtime()),
                                                               "limit": 100}).json()["items"]
    paid = next(r for r in records if r["event_type"] == "order.paid")
    assert paid["event_id"] == "9001" and paid["event"]["wu_id"] == "1001" and paid["event"]["qr_code"] is None
    assert paid["event"]["payload"]["order_id"] == "70001" and "orderId" not in json.dumps(paid)
