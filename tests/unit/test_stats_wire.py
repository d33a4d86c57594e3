"""The seed's wire format (realtime-stats-mq-spec.md) read as it is: camelCase names, integer ids, the seed's
defaults for "none", message fields beside the common parameters or under `data`, the exchange as the type;
and the share-visit split by joinType."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketing.stats.metrics import METRICS, effect_of
from marketing.stats.models import EVENT_ADAPTER, SPEC_EXCHANGES

COMMON = {"sessionStr": "s-1", "parentTopicType": "page", "parentTopicId": 7, "topicType": "activity",
          "topicId": 42, "qrCode": "QR9", "wuId": 1001, "channelType": "wx", "ctime": 1795000000000}


def read(raw):
    return EVENT_ADAPTER.validate_python(raw)


def test_the_common_parameters_are_read_under_the_seeds_names_and_dumped_under_ours():
    event = read({"event_type": "activity.share", "recordId": 9001, **COMMON})
    assert event.model_dump(mode="json", exclude={"payload"}) == {
        "event_id": "9001", "event_type": "activity.share", "session_str": "s-1", "parent_topic_type": "page",
        "parent_topic_id": "7", "topic_type": "activity", "topic_id": "42", "qr_code": "QR9", "wu_id": "1001",
        "channel_type": "wx", "ctime": "2026-11-18T11:06:40Z", "deliver_at": None}


def test_both_spellings_and_both_id_types_make_the_same_event():
    ours = read({"event_id": "9001", "event_type": "order.paid", "session_str": "s-1", "topic_type": "activity",
                 "topic_id": "42", "wu_id": "1001", "ctime": 1795000000000,
                 "payload": {"order_id": "70001", "amount": 1990}})
    seeds = read({"exchange": "ex.order.pay.success", "recordId": 9001, "sessionStr": "s-1", "topicType": "activity",
                  "topicId": 42, "wuId": 1001, "ctime": 1795000000000, "data": {"orderId": 70001, "amount": 1990}})
    assert ours == seeds


def test_the_seeds_defaults_for_none_are_none():
    event = read({"event_type": "activity.visit", "eventId": "v1", **COMMON, "wuId": 0, "qrCode": "",
                  "channelType": "", "parentTopicType": "", "parentTopicId": 0})
    assert (event.wu_id, event.qr_code, event.channel_type, event.parent_topic_type, event.parent_topic_id) == (
        None, None, None, None, None)
    assert effect_of(event).uniques == [("visitors", "s:s-1")]  # wuId 0 is nobody: the session counts


@pytest.mark.parametrize(("message", "event_type", "payload"), [
    ({"exchange": "ex.data.load.visit", "userRecordId": 501}, "page.visit", {"user_record_id": "501"}),
    ({"exchange": "ex.h5.activity.visit", "channelCode": "c7"}, "activity.h5_visit", {"channel_code": "c7"}),
    ({"exchange": "ex.cash.voucher.expire", "actReceiveId": 3, "redPackNum": 2, "orderId": 5},
     "red_packet.expired", {"receive_id": "3", "quantity": 2, "order_id": "5", "member": False}),
    ({"exchange": "ex.card.off", "recordId": 1, "data": {"offId": 8}}, "coupon.redeemed",
     {"redemption_id": "8", "brand_id": None, "discount_amount": 0, "redeemed_amount": 0, "member": False}),
    ({"exchange": "ex.card.off.revoke", "recordId": 1, "data": {"revokeId": 8}}, "coupon.revoked",
     {"revocation_id": "8", "amount": 0, "member": False}),
    ({"exchange": "ex.cash.voucher.receive.success", "recordId": 1, "data": {"actReceiveId": 8}},
     "red_packet.received", {"receive_id": "8", "quantity": 1}),
    ({"exchange": "ex.visit.by.share", "joinType": 3}, "share.visit", {"join_type": "succeeded", "new_user": False}),
    ({"exchange": "ex.act.group.join", "joinType": 1}, "group_buy.opened", {"group_id": None, "join_type": "opened"}),
    ({"exchange": "ex.act.group.join", "joinType": 2}, "group_buy.joined", {"group_id": None, "join_type": "joined"}),
    ({"exchange": "ex.act.group.join", "joinType": 3}, "group_buy.succeeded",
     {"group_id": None, "join_type": "succeeded"}),
])
def test_a_seed_message_is_read_from_its_exchange_and_own_fields(message, event_type, payload):
    event = read({**COMMON, **message})
    assert event.event_type == event_type
    assert event.payload.model_dump() == payload


def test_every_exchange_of_the_seed_names_an_event_type():
    assert len(SPEC_EXCHANGES) == 16  # 1.1-1.2, 2.1-2.14 (2.15 by joinType)
    for exchange, event_type in SPEC_EXCHANGES.items():
        with pytest.raises(ValidationError) as caught:
            read({"exchange": exchange, "topicType": "activity"})
        assert not any(e["type"].startswith("union_tag") for e in caught.value.errors()), exchange
        assert caught.value.errors()[0]["loc"][0] == event_type


def test_a_message_without_id_is_identified_by_its_digest():
    first = read({"exchange": "ex.data.load.share", **COMMON})
    assert first.event_id.startswith("d:") and read({"exchange": "ex.data.load.share", **COMMON}) == first
    assert read({"exchange": "ex.data.load.share", **COMMON, "ctime": 1795000000001}).event_id != first.event_id


@pytest.mark.parametrize(("raw", "field"), [
    ({"exchange": "ex.order.pay.success", "recordId": 1, "data": {"orderId": 1}}, "amount"),  # a fact to send
    ({"exchange": "ex.act.group.join", "joinType": 7}, None),  # no such step: an unknown type
    ({"event_type": "activity.visit", "wuId": True}, "wuId"),  # a boolean is no id
    ({"event_type": "activity.visit", "wuId": 10**200}, "wuId"),  # too long for an id
    ({"event_type": "activity.visit", "bogus": 1}, "bogus"),
    ({"event_type": "activity.visit", "topic_id": "42"}, "topicId"),  # both spellings: which one?
])
def test_seed_messages_still_validate(raw, field):
    with pytest.raises(ValidationError) as caught:
        read({**COMMON, **raw})
    if field:
        assert field in str(caught.value)


def test_share_visits_split_by_join_type():
    for join in (1, 2, 3):
        counts = effect_of(read({"exchange": "ex.visit.by.share", **COMMON, "joinType": join})).counts
        name = f"share_visits_{('opened', 'joined', 'succeeded')[join - 1]}"
        assert counts == {"share_visits": 1, name: 1} and name in METRICS
    assert effect_of(read({"exchange": "ex.visit.by.share", **COMMON})).counts == {"share_visits": 1}
