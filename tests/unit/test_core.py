"""Unit tests of the shared core: identity, page tokens, ids, error mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from marketing.core import pagination
from marketing.core.clock import iso
from marketing.core.errors import BadRequest, Forbidden, MalformedBody, Unauthorized
from marketing.core.http import MAX_BODY_DEPTH, read_json
from marketing.core.identity import Role, caller_from_claims, parse_roles
from marketing.core.ids import UNAMBIGUOUS_ALPHABET, new_id, random_code
from marketing.core.types import UtcTime


@pytest.mark.parametrize(("raw", "expected"), [
    ("[admin user]", {Role.ADMIN, Role.USER}),    # API Gateway's rendering of a list claim
    ('["service"]', {Role.SERVICE}),
    ("admin,user", {Role.ADMIN, Role.USER}),
    (["user", "root"], {Role.USER}),              # unknown roles are ignored
    (None, set()),
])
def test_roles_in_every_shape_the_authorizer_passes(raw, expected):
    assert parse_roles(raw) == expected


def test_caller_needs_subject_tenant_and_a_role():
    with pytest.raises(Unauthorized):
        caller_from_claims({"sub": "x"})
    with pytest.raises(Forbidden):
        caller_from_claims({"sub": "x", "tenant_id": "t", "roles": "[root]"})
    caller = caller_from_claims({"sub": "u1", "tenant_id": "t", "app_id": "a", "roles": "[user]"})
    caller.require_user_access("u1")
    with pytest.raises(Forbidden):
        caller.require_user_access("u2")
    with pytest.raises(Forbidden):
        caller.require(Role.ADMIN)


def test_staff_act_on_any_user_of_their_tenant_only():
    service = caller_from_claims({"sub": "backend", "tenant_id": "t", "roles": "[service]"})
    service.require_user_access("anyone")
    with pytest.raises(Forbidden):
        service.require_same_tenant("other")


def test_page_tokens_round_trip_and_refuse_other_partitions():
    key = {"pk": "T#t1#U#a", "sk": "ARRIVAL#1#x"}
    token = pagination.encode(key)
    assert pagination.decode(token, partition={"pk": "T#t1#U#a"}) == key
    with pytest.raises(BadRequest):
        pagination.decode(token, partition={"pk": "T#t2#U#a"})
    with pytest.raises(BadRequest):
        pagination.decode("%%%", partition={"pk": "T#t1#U#a"})
    with pytest.raises(BadRequest):
        pagination.decode(pagination.encode({"pk": "T#t1#U#a", "sk": 5}), partition={"pk": "T#t1#U#a"})
    assert pagination.encode(None) is None and pagination.decode(None, partition={}) is None


@pytest.mark.parametrize("key", [
    {"pk": "T#t1#U#a"},                                                        # no sort key: DynamoDB refuses it
    {"pk": "T#t1#U#a", "sk": "ARRIVAL#1#x", "gsi1pk": "g", "gsi1sk": "x"},     # an index's token on the table
    {"pk": "T#t1#U#a", "sk": "DOWN#01#x"},                                     # another query of the partition
])
def test_page_tokens_must_be_a_key_of_the_query_itself(key):
    query = {"partition": {"pk": "T#t1#U#a"}, "key_names": ("pk", "sk"), "sort_prefix": ("sk", "ARRIVAL#")}
    assert pagination.decode(pagination.encode({"pk": "T#t1#U#a", "sk": "ARRIVAL#2#y"}), **query)
    with pytest.raises(BadRequest):
        pagination.decode(pagination.encode(key), **query)


def test_codes_and_ids():
    code = random_code(12)
    assert len(code) == 12 and set(code) <= set(UNAMBIGUOUS_ALPHABET)
    assert not set(UNAMBIGUOUS_ALPHABET) & set("01OIL")
    ids = [new_id() for _ in range(50)]
    assert len(set(ids)) == 50 and all(len(i) == 26 for i in ids)
    assert ids[0][:10] <= ids[-1][:10]  # time-ordered prefix


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_json_body_is_read_up_to_dynamodbs_nesting_limit():
    assert read_json(nested_list(MAX_BODY_DEPTH)) is not None
    assert read_json('{"a": [1, {"b": {}}]}') == {"a": [1, {"b": {}}]}
    for too_deep in (nested_list(MAX_BODY_DEPTH + 1), nested_list(5000), '{"a": ' * 40 + "1" + "}" * 40):
        with pytest.raises(MalformedBody):
            read_json(too_deep)


def test_times_are_written_with_four_digit_years_and_read_only_inside_the_utc_calendar():
    assert iso(datetime(176, 9, 2, 23, 42, 51, 123456, tzinfo=UTC)) == "0176-09-02T23:42:51.123Z"
    read = TypeAdapter(UtcTime).validate_python
    assert iso(read("2026-11-01T08:00:00+08:00")) == "2026-11-01T00:00:00.000Z"
    for outside in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "2026-11-01T00:00:00"):
        with pytest.raises(ValidationError):
            read(outside)
