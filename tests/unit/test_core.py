"""Unit tests of the shared core: identity, page tokens, ids, error mapping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from pydantic import TypeAdapter, ValidationError

from marketing.core import pagination
from marketing.core.clock import iso
from marketing.core.errors import BadRequest, Forbidden, MalformedBody, Unauthorized
from marketing.core.http import MAX_BODY_DEPTH, read_json
from marketing.core.identity import Role, caller_from_claims, parse_roles, scope_of
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
        caller_from_claims({"sub": "x", "tenant_id": "t", "app_id": "a", "roles": "[root]"})
    caller = caller_from_claims({"sub": "u1", "tenant_id": "t", "app_id": "a", "roles": "[user]"})
    caller.require_user_access("u1")
    with pytest.raises(Forbidden):
        caller.require_user_access("u2")
    with pytest.raises(Forbidden):
        caller.require(Role.ADMIN)


def test_staff_act_on_any_user_of_their_tenant_only():
    service = caller_from_claims({"sub": "backend", "tenant_id": "t", "app_id": "a", "roles": "[service]"})
    service.require_user_access("anyone")
    with pytest.raises(Forbidden):
        service.require_same_tenant("other")


@pytest.mark.parametrize("claims", [
    {"tenant_id": "t"},                             # no app
    {"tenant_id": "t", "app_id": ""},
    {"tenant_id": "t", "app_id": "a#A#b"},          # would reach into another app's keys
    {"tenant_id": "t", "app_id": "a/b"},
    {"tenant_id": "t", "app_id": "a" * 129},
    {"tenant_id": "t", "app_id": ["a"]},
    {"tenant_id": "t#A#x", "app_id": "a"},          # nor may the tenant
    {"app_id": "a"},
])
def test_a_token_without_a_valid_tenant_or_app_is_unauthorized(claims):
    with pytest.raises(Unauthorized):
        caller_from_claims({"sub": "x", "roles": "[admin]", **claims})


def test_the_scope_of_every_key_is_the_tenant_and_the_app():
    caller = caller_from_claims({"sub": "x", "tenant_id": "t1", "app_id": "app-2", "roles": "[admin]"})
    assert (caller.tenant_id, caller.app_id, caller.scope) == ("t1", "app-2", "t1#A#app-2")
    assert caller.scope == scope_of("t1", "app-2") != scope_of("t1", "app-3")


PARTITION = {"pk": "T#t1#U#a"}
QUERY = '["arrivals of a"]'


def token_for(key: dict, *, query: str = QUERY, audience=("t1", "app1", "alice", "GET /tracks")) -> str:
    pagination.bind(*audience)
    return pagination.encode(key, query=query, partition=PARTITION)


def test_page_tokens_round_trip_without_the_partition():
    key = {**PARTITION, "sk": "ARRIVAL#1#x"}
    token = token_for(key)
    assert "T#t1" not in base64.urlsafe_b64decode(token.split(".")[0] + "==").decode()  # the query has it
    assert pagination.decode(token, query=QUERY, partition=PARTITION) == key
    assert pagination.encode(None, query=QUERY, partition=PARTITION) is None
    assert pagination.decode(None, query=QUERY, partition=PARTITION) is None


def _altered(token: str) -> str:
    """The same key with another sort key inside the query's own partition and prefix, the MAC kept."""
    _, mac = token.split(".")
    key = base64.urlsafe_b64encode(json.dumps({"sk": "ARRIVAL#1#zzz"}).encode()).decode().rstrip("=")
    return f"{key}.{mac}"


def _unsigned(token: str) -> str:
    """What page tokens used to be: base64 of the LastEvaluatedKey, which anyone can write."""
    return base64.urlsafe_b64encode(json.dumps({**PARTITION, "sk": "ARRIVAL#1#zzz"}).encode()).decode().rstrip("=")


@pytest.mark.parametrize("spoil", [
    _altered, _unsigned, lambda t: t[:-2], lambda t: "!!not-a-token", lambda t: t + "é",
], ids=["altered key", "unsigned", "truncated MAC", "garbage", "non-ASCII"])
def test_a_forged_or_altered_page_token_is_400_naming_next_token(spoil):
    token = token_for({**PARTITION, "sk": "ARRIVAL#1#x"})
    with pytest.raises(BadRequest) as refused:
        pagination.decode(spoil(token), query=QUERY, partition=PARTITION)
    assert refused.value.details == [{"field": "next_token"}]


@pytest.mark.parametrize("elsewhere", [
    {"query": '["downline of a"]'},                                            # another query of the partition
    {"partition": {"pk": "T#t2#U#a"}},                                         # another tenant's partition
    {"audience": ("t1", "app1", "mallory", "GET /tracks")},                    # another caller
    {"audience": ("t1", "app2", "alice", "GET /tracks")},                      # another app of the tenant
    {"audience": ("t1", "app1", "alice", "GET /v1/rewards")},                  # another route
])
def test_a_page_token_works_only_for_its_caller_and_query(elsewhere):
    token = token_for({**PARTITION, "sk": "ARRIVAL#1#x"})
    pagination.bind(*elsewhere.get("audience", ("t1", "app1", "alice", "GET /tracks")))
    with pytest.raises(BadRequest):
        pagination.decode(token, query=elsewhere.get("query", QUERY), partition=elsewhere.get("partition", PARTITION))


def test_in_lambda_the_key_is_the_templates_secret(monkeypatch):
    # Given a function in Lambda whose page-token secret holds a generated value
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="page-tokens", SecretString="s3cr3t" * 8)["ARN"]
        local = token_for({**PARTITION, "sk": "ARRIVAL#1#x"})  # signed with the local default
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "TrackApi")
        monkeypatch.setenv("PAGE_TOKEN_SECRET_ARN", arn)
        pagination.reset()
        try:
            # Then its tokens are signed with that secret, and a token signed with the local default is refused
            token = token_for({**PARTITION, "sk": "ARRIVAL#1#x"})
            assert pagination.decode(token, query=QUERY, partition=PARTITION)["sk"] == "ARRIVAL#1#x"
            with pytest.raises(BadRequest):
                pagination.decode(local, query=QUERY, partition=PARTITION)
        finally:
            pagination.reset()


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
