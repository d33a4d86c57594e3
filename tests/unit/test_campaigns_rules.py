"""The audience rule language, period keys and how bus events become task events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from marketing.campaigns import rules
from marketing.campaigns.engine import TaskEvent, _amount
from marketing.campaigns.models import AudienceIn
from marketing.campaigns.periods import period_key

RULE = TypeAdapter(rules.Rule)


def rule(data: dict) -> rules.Rule:
    return RULE.validate_python(data)


@pytest.mark.parametrize(("data", "attributes", "expected"), [
    ({"attr": "country", "op": "eq", "value": "CN"}, {"country": "CN"}, True),
    ({"attr": "country", "op": "eq", "value": "CN"}, {"country": "US"}, False),
    ({"attr": "country", "op": "ne", "value": "CN"}, {}, True),
    ({"attr": "level", "op": "gte", "value": 3}, {"level": 3}, True),
    ({"attr": "level", "op": "gt", "value": 3}, {"level": 3}, False),
    ({"attr": "level", "op": "lt", "value": 3}, {"level": "2"}, False),  # a string is not a number
    ({"attr": "level", "op": "eq", "value": 1}, {"level": True}, False),  # nor is a boolean
    ({"attr": "tags", "op": "contains", "value": "vip"}, {"tags": ["new", "vip"]}, True),
    ({"attr": "tags", "op": "contains", "value": "vip"}, {"tags": "vip"}, False),
    ({"attr": "city", "op": "in", "value": ["SH", "BJ"]}, {"city": "BJ"}, True),
    ({"attr": "city", "op": "not_in", "value": ["SH", "BJ"]}, {"city": "BJ"}, False),
    ({"attr": "profile.age", "op": "lte", "value": 30}, {"profile": {"age": 29}}, True),
    ({"attr": "email", "op": "exists"}, {"email": "a@b"}, True),
    ({"attr": "email", "op": "exists", "value": False}, {}, True),
    ({"all": [{"attr": "a", "op": "eq", "value": 1}, {"attr": "b", "op": "eq", "value": 2}]}, {"a": 1, "b": 2}, True),
    ({"all": [{"attr": "a", "op": "eq", "value": 1}, {"attr": "b", "op": "eq", "value": 2}]}, {"a": 1}, False),
    ({"any": [{"attr": "a", "op": "eq", "value": 1}, {"attr": "b", "op": "eq", "value": 2}]}, {"b": 2}, True),
    ({"not": {"attr": "banned", "op": "eq", "value": True}}, {"banned": False}, True),
])
def test_rules_evaluate(data, attributes, expected):
    assert rules.matches(rule(data), attributes) is expected


@pytest.mark.parametrize("data", [
    {"attr": "a", "op": "between", "value": 1},
    {"attr": "a", "op": "in", "value": 1},
    {"attr": "a", "op": "gt", "value": [1]},
    {"attr": "a", "op": "eq"},
    {"attr": "__import__('os')", "op": "eq", "value": 1},
    {"all": []},
    {"attr": "a", "op": "eq", "value": 1, "extra": "no"},
])
def test_malformed_rules_are_refused(data):
    with pytest.raises(ValidationError):
        rule(data)


def test_deep_or_large_rules_are_refused_on_the_audience():
    leaf = {"attr": "a", "op": "eq", "value": 1}
    deep = leaf
    for _ in range(6):
        deep = {"not": deep}
    with pytest.raises(ValidationError, match="deeper"):
        AudienceIn(name="x", audience_type="TAG", rule=deep)
    wide = {"any": [{"all": [leaf] * 10}] * 6}
    with pytest.raises(ValidationError, match="nodes"):
        AudienceIn(name="x", audience_type="TAG", rule=wide)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=10)


@given(attributes=st.dictionaries(st.sampled_from(["a", "b", "tags", "level"]), json_values, max_size=4),
       op=st.sampled_from(["eq", "ne", "contains", "gt", "gte", "lt", "lte", "exists"]),
       value=st.integers() | st.text(max_size=5))
def test_rules_never_raise_whatever_the_user_attributes(attributes, op, value):
    result = rules.matches(rule({"not": {"attr": "level", "op": op, "value": value}}), attributes)
    assert isinstance(result, bool)


def test_period_keys():
    monday = datetime(2026, 11, 23, 23, 59, tzinfo=UTC)
    assert period_key("ONCE", monday) == "ONCE"
    assert period_key("DAILY", monday) == "D2026-11-23"
    assert period_key("WEEKLY", monday) == "W2026-48"
    assert period_key("WEEKLY", datetime(2027, 1, 1, tzinfo=UTC)) == "W2026-53"  # ISO week of the old year
    assert period_key("DAILY", datetime(2026, 1, 2, tzinfo=UTC)) < period_key("DAILY", datetime(2026, 1, 10,
                                                                                                  tzinfo=UTC))


def test_bus_events_become_task_events():
    own = TaskEvent.from_bus("task.triggered", {
        "event_id": "e1", "tenant_id": "t", "app_id": "a", "occurred_at": "2026-11-23T10:00:00.000Z",
        "event_type": "PURCHASE", "user_id": "u", "event_data": {"amount": 5}, "user_attributes": {"vip": True}})
    assert (own.event_type, own.user_id, own.data, own.attributes, own.referrer) == \
        ("PURCHASE", "u", {"amount": 5}, {"vip": True}, None)
    arrival = TaskEvent.from_bus("track.new_user", {
        "event_id": "trk", "tenant_id": "t", "app_id": "a", "occurred_at": "2026-11-23T10:00:00.000Z",
        "id": "trk", "user_id": "bob", "referrer": "alice", "track_type": 2})
    assert (arrival.event_type, arrival.user_id, arrival.referrer) == ("track.new_user", "bob", "alice")
    order = TaskEvent.from_bus("cps.order_paid", {
        "event_id": "o1", "tenant_id": "t", "app_id": "a2", "occurred_at": "2026-11-23T10:00:00.000Z",
        "buyer_id": "carol", "pay_price": 1999})
    assert (order.user_id, _amount({"type": "sum", "field": "pay_price"}, order.data)) == ("carol", 1999)
    assert (own.scope, order.scope) == ("t#A#a", "t#A#a2")  # each acts in the app its envelope names


@pytest.mark.parametrize(("value", "expected"), [(5, 5), (5.0, 5), (5.5, None), (-1, None), (True, None),
                                                 ("5", None), (None, None)])
def test_sum_amounts_are_whole_non_negative_numbers(value, expected):
    assert _amount({"type": "sum", "field": "x"}, {"x": value}) == expected
