"""The authorization matrix: every route of template.yaml × every kind of caller who must be refused, over HTTP
against the local stack.

The routes come from the template (`HttpApi` events) and must all be operations of the served OpenAPI document,
which also names each route's required query parameters. `POLICIES` says who may call each route and what
another tenant's admin (and an admin of another app of the same tenant) gets there; a template route without
a policy fails `test_every_route_has_a_policy`, so a new route is covered by construction. `KINDS` are the
callers, one line each: a kind says, from a route's policy, what it must get there, or nothing when it is
allowed (then the functional tests cover it).

Tenant A is seeded first (tests/e2e/seeding.py) and every request targets A's real ids. Whatever the kind,
no answer is a 5xx and none shows a value of A's the request did not name; after the matrix, every read of
A's data answers as before it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests

from tests.e2e.conftest import Api
from tests.e2e.seeding import CAMPAIGN, COUPON, CPS_SETTINGS, seed_tenant, task_body
from tests.support import http_routes

# Who may call a route
PUBLIC, ANY, OWNER, STAFF, ADMIN = "public", "any role", "a user on their own data, staff", "admin, service", "admin"
# What another tenant's admin gets on a route naming A's ids
NOT_FOUND, EMPTY, OWN, REFUSED = "404", "200, nothing of A", "2xx in its own tenant", "a 4xx"


@dataclass(frozen=True)
class Policy:
    who: str
    cross: str = NOT_FOUND
    path: dict[str, Any] = field(default_factory=dict)   # path parameters other than the seeded ids by name
    query: dict[str, Any] = field(default_factory=dict)  # beyond the required ones, filled from the seeded ids
    body: Any = None                                     # valid, so that only the caller decides the answer
    user: int = 403                                      # what a user gets on another user's data


def events_body() -> dict:
    return {"events": [{"event_id": f"m-{uuid.uuid4().hex[:10]}", "event_type": "activity.visit",
                        "topic_type": "activity", "topic_id": "{topic_id}", "wu_id": "bob"}]}


POLICIES: dict[str, Policy] = {
    "GET /health": Policy(PUBLIC),
    "GET /console": Policy(PUBLIC),  # the operator console's static files: the page signs in itself
    "GET /console/{proxy+}": Policy(PUBLIC),
    "POST /v1/cps/{tenant_id}/{app_id}/{platform}/orders": Policy(PUBLIC),  # signed by the platform, not a token
    # tracking
    "GET /tracks/{user_id}/{track_type}": Policy(OWNER, OWN),  # another tenant gets its own alice's code
    "POST /tracks": Policy(OWNER, REFUSED, body={"user_id": "bob", "track_type": 2, "promcode": "{promcode}"}),
    "GET /tracks": Policy(OWNER, EMPTY),
    "GET /tracks/summary": Policy(OWNER, EMPTY),
    "GET /promos/{promcode}": Policy(ANY),
    "GET /promos/{promcode}/qrcode.svg": Policy(ANY),
    "GET /track-types": Policy(ANY, OWN),
    "PUT /track-types/{track_type}": Policy(ADMIN, OWN, path={"track_type": 7}, body={"name": "matrix_type"}),
    # CPS
    "POST /v1/affiliates": Policy(OWNER, REFUSED, body={"user_id": "bob", "invite_code": "{invite_code}"}),
    "GET /v1/affiliates/{user_id}": Policy(OWNER, path={"user_id": "v"}),
    "GET /v1/affiliates/{user_id}/downline": Policy(OWNER, EMPTY, path={"user_id": "p-root"}),
    "GET /v1/affiliates/{user_id}/upline": Policy(OWNER, path={"user_id": "v"}),
    "GET /v1/affiliates/{user_id}/commissions": Policy(OWNER, EMPTY, path={"user_id": "v"}),
    "GET /v1/affiliates/{user_id}/earnings": Policy(OWNER, OWN, path={"user_id": "v"}),
    "PUT /v1/affiliates/{user_id}/status": Policy(ADMIN, path={"user_id": "v"},
                                                  body={"status": "FROZEN", "reason": "matrix"}),
    "POST /v1/affiliates/{user_id}/pending-reversals": Policy(ADMIN, path={"user_id": "v"}, body={"reason": "matrix"}),
    "GET /v1/cps/settings": Policy(STAFF, OWN),
    "PUT /v1/cps/settings": Policy(ADMIN, OWN, body=CPS_SETTINGS),
    "GET /v1/cps/orders/{platform}/{order_id}": Policy(STAFF),
    "GET /v1/cps/reconciliation": Policy(STAFF, EMPTY),
    # rewards and inventory
    "POST /v1/rewards": Policy(ADMIN, OWN, body={**COUPON, "total_stock": 5}),
    "GET /v1/rewards": Policy(ANY, EMPTY),
    "GET /v1/rewards/{reward_id}": Policy(ANY),
    "PUT /v1/rewards/{reward_id}": Policy(ADMIN, body={**COUPON, "name": "changed"}),
    "DELETE /v1/rewards/{reward_id}": Policy(ADMIN),
    "POST /v1/rewards/{reward_id}/stock": Policy(ADMIN, body={"delta": -1}),
    "POST /v1/inventory/reserve": Policy(STAFF, body={"reward_id": "{reward_id}", "user_id": "bob"}),
    "POST /v1/inventory/{reservation_id}/confirm": Policy(STAFF),
    "POST /v1/inventory/{reservation_id}/cancel": Policy(STAFF),
    "GET /v1/inventory/reservations": Policy(OWNER, EMPTY, query={"user_id": "bob"}),
    "GET /v1/reward-grants": Policy(OWNER, EMPTY, query={"user_id": "bob"}),
    # another user's grant read by id is not found: its existence is not told
    "GET /v1/reward-grants/{grant_id}": Policy(OWNER, user=404),
    "PUT /v1/reward-grants/{grant_id}/status": Policy(STAFF, body={"status": "USED"}),
    "POST /v1/reward-grants/{grant_id}/rollback": Policy(STAFF),
    "GET /v1/users/{user_id}/rewards": Policy(OWNER, EMPTY, path={"user_id": "bob"}),  # bob redeemed a code of A
    "POST /v1/rewards/{reward_id}/grant-batches": Policy(STAFF, body={"user_ids": ["bob"], "reason": "matrix"}),
    "GET /v1/grant-batches/{grant_batch_id}": Policy(STAFF),
    # redeem codes
    "POST /v1/campaigns/{campaign_id}/redeem-codes": Policy(ADMIN, body={"reward_id": "{reward_id}", "count": 2}),
    "GET /v1/redeem-code-batches/{batch_id}": Policy(STAFF),
    "POST /v1/redeem-code-batches/{batch_id}/export": Policy(ADMIN, body={"format": "csv"}),
    "GET /v1/redeem-codes": Policy(STAFF),
    "GET /v1/redeem-codes/{code}": Policy(STAFF),
    "POST /v1/redeem-codes/{code}/assign": Policy(STAFF, body={"user_id": "mallory"}),
    "POST /v1/redeem-codes/{code}/revoke": Policy(ADMIN),
    "POST /v1/redeem": Policy(OWNER, body={"code": "{code}", "user_id": "bob"}),
    # another tenant checking A's code learns that no such code is its own: valid false, CODE_NOT_FOUND
    "POST /v1/redeem/validate": Policy(OWNER, EMPTY, body={"code": "{code}", "user_id": "bob"}),
    # campaigns, audiences, tasks
    "POST /v1/campaigns": Policy(ADMIN, OWN, body=CAMPAIGN),
    "GET /v1/campaigns": Policy(STAFF, EMPTY),
    "GET /v1/campaigns/{campaign_id}": Policy(STAFF),
    "PUT /v1/campaigns/{campaign_id}": Policy(ADMIN, body={**CAMPAIGN, "name": "changed"}),
    "DELETE /v1/campaigns/{campaign_id}": Policy(ADMIN),
    "POST /v1/campaigns/{campaign_id}/tasks": Policy(ADMIN, body={"task_id": "{task_id}"}),
    "GET /v1/campaigns/{campaign_id}/tasks": Policy(STAFF),
    "DELETE /v1/campaigns/{campaign_id}/tasks/{task_id}": Policy(ADMIN),
    "POST /v1/audiences": Policy(ADMIN, OWN, body={"name": "matrix", "audience_type": "ALL"}),
    "GET /v1/audiences": Policy(STAFF, EMPTY),
    "GET /v1/audiences/{audience_id}": Policy(STAFF),
    "PUT /v1/audiences/{audience_id}": Policy(ADMIN, body={"name": "changed", "audience_type": "ALL"}),
    "DELETE /v1/audiences/{audience_id}": Policy(ADMIN),
    "POST /v1/audiences/{audience_id}/match": Policy(STAFF, body={"user_id": "u1"}),
    "POST /v1/tasks": Policy(ADMIN, REFUSED, body=task_body("matrix", "{reward_id}")),  # A's reward is unknown
    "GET /v1/tasks": Policy(STAFF, EMPTY),
    "POST /v1/tasks/trigger": Policy(STAFF, OWN, body={"event_type": "SIGN_IN", "user_id": "u9", "event_data": {}}),
    "GET /v1/tasks/{task_id}": Policy(STAFF),
    "PUT /v1/tasks/{task_id}": Policy(ADMIN, REFUSED, body=task_body("changed", "{reward_id}")),
    "DELETE /v1/tasks/{task_id}": Policy(ADMIN),
    "GET /v1/tasks/{task_id}/completion-stats": Policy(STAFF),
    "GET /v1/task-completion-logs": Policy(OWNER, EMPTY, query={"user_id": "u1"}),
    "GET /v1/users/{user_id}/tasks": Policy(OWNER, OWN, path={"user_id": "u1"}),
    # statistics
    "POST /v1/events": Policy(ANY, OWN, body=events_body()),
    "GET /v1/stats/{topic_type}/{topic_id}": Policy(STAFF, OWN),
    "GET /v1/stats/{topic_type}/{topic_id}/chart.svg": Policy(STAFF, OWN),
    "GET /v1/stats/{topic_type}/{topic_id}/records": Policy(STAFF, EMPTY),
}


ROUTES = http_routes()


# --- the world: tenant A seeded, tenant B empty ------------------------------------------------------------------

@dataclass
class World:
    stack: Any
    a: str
    b: str
    ids: dict[str, list]
    openapi: dict
    answers: list[tuple[str, int]] = field(default_factory=list)  # (route, status) of every request
    before: dict[str, tuple[int, str]] = field(default_factory=dict)  # A's reads before the matrix

    def token(self, tenant: str, *, sub: str = "ops", roles: str = "admin", app: str = "app1",
              ttl_seconds: int = 3600) -> str:
        return self.stack.token(tenant, sub=sub, roles=roles, app=app, ttl_seconds=ttl_seconds)

    def forged(self, tenant: str) -> str:
        """A's admin token, signed with a key that is not the authorizer's."""
        claims = jwt.decode(self.token(tenant), options={"verify_signature": False})
        return jwt.encode(claims, "not-the-authorizers-key", algorithm="HS256")

    def fill(self, value: Any) -> Any:
        """`value` with each `{name}` replaced by the first seeded id of that name."""
        if isinstance(value, str):
            return re.sub(r"\{(\w+)\}", lambda m: str(self.ids[m.group(1)][0]), value)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    def request(self, route: str, token: str | None) -> requests.Response:
        method, template_path = route.split(" ", 1)
        policy = POLICIES[route]
        path = re.sub(r"\{(\w+)\}", lambda m: str(policy.path.get(m.group(1), self.ids[m.group(1)][0])),
                      template_path)
        operation = self.openapi["paths"][template_path][method.lower()]
        query = {p["name"]: self.ids[p["name"]][0] for p in operation.get("parameters", [])
                 if p["in"] == "query" and p.get("required")}
        body = self.fill(policy.body)
        answer = Api(self.stack.api_url, token).request(method, path, params={**query, **self.fill(policy.query)},
                                                        **({"json": body} if body is not None else {}))
        self.answers.append((route, answer.status_code))
        return answer

    def secrets(self) -> list[str]:
        """Values only tenant A has: none may show in an answer to anyone else."""
        names = ("promcode", "track_type_name", "reward_id", "reservation_id", "batch_id", "code", "grant_id",
                 "audience_id", "campaign_id", "task_id", "invite_code", "pid", "order_id", "topic_id", "event_id")
        return [value for name in names for value in self.ids[name]]

    def leaks(self, answer: requests.Response) -> list[str]:
        asked = answer.request.url + str(answer.request.body or "")
        return [s for s in self.secrets() if s in answer.text and s not in asked]


def a_reads(world: World) -> dict[str, tuple[int, str]]:
    """What A's admin reads on every GET route (statistics aside: their counting is asynchronous)."""
    admin = world.token(world.a)
    return {route: (answer.status_code, answer.text) for route in POLICIES
            if route.startswith("GET ") and POLICIES[route].who != PUBLIC and "/v1/stats/" not in route
            for answer in [world.request(route, admin)]}


@pytest.fixture(scope="module")
def world(local_stack) -> World:
    run = uuid.uuid4().hex[:8]
    a, b = f"t-matrix-a-{run}", f"t-matrix-b-{run}"
    openapi = requests.get(f"{local_stack.api_url}/docs/openapi.json", timeout=60).json()
    created = World(local_stack, a, b, seed_tenant(local_stack, a), openapi)
    created.before = a_reads(created)
    return created


# --- what each kind of caller must get -----------------------------------------------------------------------------

Check = Callable[[requests.Response], None]


def status(expected: int, code: str | None = None) -> Check:
    def check(answer: requests.Response) -> None:
        assert answer.status_code == expected, answer.text
        if code:
            assert answer.json()["error"]["code"] == code

    return check


def succeeds(answer: requests.Response) -> None:
    assert 200 <= answer.status_code < 300, answer.text


def refused(answer: requests.Response) -> None:
    assert 400 <= answer.status_code < 500 and answer.status_code != 401, answer.text


UNAUTHORIZED, FORBIDDEN = status(401, "UNAUTHORIZED"), status(403, "FORBIDDEN")
# An answer never shows A's values (checked for every kind): a list of another tenant is its own, or empty.
CROSS = {NOT_FOUND: status(404), EMPTY: status(200), OWN: succeeds, REFUSED: refused}


def bad_token(policy: Policy) -> Check | None:
    return None if policy.who == PUBLIC else UNAUTHORIZED


def other_tenant(policy: Policy) -> Check | None:
    return None if policy.who == PUBLIC else CROSS[policy.cross]


def other_user(policy: Policy) -> Check | None:
    return {ADMIN: FORBIDDEN, STAFF: FORBIDDEN, OWNER: status(policy.user)}.get(policy.who)


def service(policy: Policy) -> Check | None:
    return FORBIDDEN if policy.who == ADMIN else None


@dataclass(frozen=True)
class Kind:
    name: str
    token: Callable[[World], str | None]
    expects: Callable[[Policy], Check | None]


KINDS = [
    Kind("no token", lambda w: None, bad_token),
    Kind("expired token", lambda w: w.token(w.a, ttl_seconds=-60), bad_token),
    Kind("token with a foreign signature", lambda w: w.forged(w.a), bad_token),
    Kind("another tenant's admin", lambda w: w.token(w.b), other_tenant),
    Kind("same-tenant admin of another app", lambda w: w.token(w.a, app="app2"), other_tenant),
    Kind("same-tenant user, another sub", lambda w: w.token(w.a, sub="mallory", roles="user"), other_user),
    Kind("same-tenant service", lambda w: w.token(w.a, sub="backend", roles="service"), service),
]

CELLS = [(route, kind) for route in ROUTES if route in POLICIES for kind in KINDS if kind.expects(POLICIES[route])]


# --- the tests ---------------------------------------------------------------------------------------------------

def test_every_route_has_a_policy():
    assert sorted(set(ROUTES) - set(POLICIES)) == [], "template routes without a policy in POLICIES"
    assert sorted(set(POLICIES) - set(ROUTES)) == [], "policies of routes the template does not have"
    assert {route for route, public in ROUTES.items() if public} == \
        {route for route, policy in POLICIES.items() if policy.who == PUBLIC}


STATIC_FILES = {"GET /console", "GET /console/{proxy+}"}  # the console's files: pages, not API operations


def test_every_route_is_an_operation_of_the_openapi_document_which_tells_if_it_takes_a_token(world):
    operations = {f"{method.upper()} {path}": operation for path, item in world.openapi["paths"].items()
                  for method, operation in item.items()}
    api = {route: public for route, public in ROUTES.items() if route not in STATIC_FILES}
    assert sorted(set(api) - set(operations)) == []
    assert world.openapi["security"] == [{"bearer": []}]
    assert {route for route in api if operations[route].get("security") == []} == \
        {route for route, public in api.items() if public}


@pytest.mark.parametrize(("route", "kind"), CELLS, ids=[f"{route} | {kind.name}" for route, kind in CELLS])
def test_the_caller_gets_what_its_kind_may(world, route, kind):
    answer = world.request(route, kind.token(world))
    assert answer.status_code < 500, answer.text
    assert not world.leaks(answer), answer.text
    kind.expects(POLICIES[route])(answer)


def test_a_reads_its_data_as_before_the_matrix(world):
    """Refused requests changed nothing, and another tenant's writes stayed in its own tenant."""
    assert a_reads(world) == world.before
    assert [answer for answer in world.answers if answer[1] >= 500] == []
