"""Test helpers shared by the suites: the moto-backed stack built from template.yaml, function loading,
API Gateway events (from events/ samples or built), and tokens for the local stack."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from local_stack import provision
from local_stack.functions import FunctionSpec, LambdaContext, function_specs, load_module
from local_stack.gateway import Route, api_event
from local_stack.template import REGION, ROOT, load, resources

TEMPLATE = load()
EVENTS = ROOT / "events"


def reset_clients() -> None:
    """Forget cached boto3 clients so the next call binds to the current mock or endpoint."""
    from marketing.core import dynamo, events, pagination
    from marketing.cps import adapters, signing
    from marketing.stats import delivery

    dynamo.resource.cache_clear()
    events._client.cache_clear()
    signing.reset()
    pagination.reset()
    adapters._secrets.cache_clear()
    delivery._sqs.cache_clear()
    delivery._scheduler.cache_clear()


@contextmanager
def mocked_stack(stack_name: str = "test") -> Iterator[provision.Stack]:
    """Every table, queue, bus and rule of template.yaml inside moto's in-process mock (single thread
    only: the in-process mock is not atomic), with the functions' environment applied."""
    with mock_aws():
        stack = provision.create(TEMPLATE, lambda service: boto3.client(service, region_name=REGION), stack_name)
        saved = dict(os.environ)
        for spec in function_specs(TEMPLATE, stack.resolver, stack_name):
            # The harness's own Powertools settings (quiet logs, no metrics, no tracing) win over the template's.
            os.environ.update({k: v for k, v in spec.environment.items()
                               if not (k.startswith("POWERTOOLS_") and k in saved)})
        reset_clients()
        try:
            yield stack
        finally:
            os.environ.clear()
            os.environ.update(saved)
            reset_clients()


_publishers: dict[str, Any] = {}  # stream ARN → the outbox publisher's event source on it (one per mocked stack)


def publish_outbox(stack: provision.Stack) -> int:
    """Run OutboxPublisherFunction on the table's stream as its event source mapping would (template.yaml),
    until it has nothing new or a batch failed (left for the next call); answers how many records it took."""
    from local_stack.delivery import table_stream_poller
    from local_stack.streams import StreamPoller

    client = lambda service: boto3.client(service, region_name=REGION)  # noqa: E731
    arn = client("dynamodb").describe_table(TableName=stack.ref("Table"))["Table"]["LatestStreamArn"]
    if arn not in _publishers:
        spec = spec_of("OutboxPublisherFunction", stack)
        props = stack.resolver.resolve(spec.events["TableStream"]["Properties"])
        # botocore's account-scoped streams endpoint is unknown to moto's in-process mock: name moto's own.
        streams = boto3.client("dynamodbstreams", region_name=REGION,
                               endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com")
        _publishers[arn] = table_stream_poller(Function("OutboxPublisherFunction", stack), "OutboxPublisher", props,
                                               client, client("sqs"), streams=streams)
    poller: StreamPoller = _publishers[arn]
    taken = 0
    while count := poller.poll_once():
        taken += count
        if poller.attempts:
            break
    return taken


def bus_tap(stack: provision.Stack, pattern: dict[str, Any]):
    """Subscribe a queue to the stack's bus with `pattern`; returns a function that publishes the outbox,
    then reads the events delivered so far (EventBridge envelopes, bodies parsed)."""
    sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
    url = sqs.create_queue(QueueName="tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.ref("EventBus")
    events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def delivered() -> list[dict]:
        publish_outbox(stack)
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return delivered


def http_routes() -> dict[str, bool]:
    """Every `HttpApi` route of template.yaml: `METHOD /path` → whether it is public (no authorizer)."""
    routes = {}
    for function in resources(TEMPLATE, "AWS::Serverless::Function").values():
        for event in function.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "HttpApi":
                props = event["Properties"]
                routes[f"{props['Method'].upper()} {props['Path']}"] = props.get("Auth", {}).get("Authorizer") == "NONE"
    return routes


def spec_of(logical_id: str, stack: provision.Stack) -> FunctionSpec:
    return next(s for s in function_specs(TEMPLATE, stack.resolver, stack.name) if s.logical_id == logical_id)


class Function:
    """A function of the template, imported fresh (a cold container), invoked with a Lambda context. With
    `publishes`, the outbox is published after each invocation, as the table's stream would shortly after."""

    def __init__(self, logical_id: str, stack: provision.Stack, *, publishes: bool = False):
        self.spec, self.stack, self.publishes = spec_of(logical_id, stack), stack, publishes
        self.module = load_module(self.spec)

    def __call__(self, event: dict, context: LambdaContext | None = None) -> Any:
        handler = getattr(self.module, self.spec.handler.rsplit(".", 1)[1])
        try:
            return handler(event, context or LambdaContext(self.spec))
        finally:
            if self.publishes:
                publish_outbox(self.stack)


class RunningOutContext(LambdaContext):
    """A Lambda context whose remaining time is told by `remaining_ms`, one value per question (the last one
    repeats): an invocation that runs low on time without a test waiting for it."""

    def __init__(self, spec: FunctionSpec, *remaining_ms: int):
        super().__init__(spec)
        self._told = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self._told.pop(0) if len(self._told) > 1 else self._told[0]


def claims(tenant: str = "t1", sub: str = "ops", roles: str = "[admin]", app: str = "app1") -> dict[str, str]:
    """Claims as the JWT authorizer hands them over: every value a string, lists rendered as `[a b]`."""
    return {"sub": sub, "tenant_id": tenant, "app_id": app, "roles": roles, "iss": "test", "aud": "test"}


def http_event(method: str, path: str, route_path: str, *, body: Any = None, query: dict | None = None,
               headers: dict | None = None, claims_: dict | None = None, content_type: str | None = None) -> dict:
    """An API Gateway v2 event, built as the local stack's gateway builds it for a real request (a body given
    as text or bytes is sent as is, anything else as JSON)."""
    builder = EnvironBuilder(path=path, method=method, query_string=query, headers=headers or {},
                             data=body if body is None or isinstance(body, str | bytes) else json.dumps(body),
                             content_type=content_type or ("application/json" if body is not None else None))
    route = Route(method, route_path, runtime=None, jwt=None)  # type: ignore[arg-type]
    params = route.regex.match(path).groupdict()
    return api_event(Request(builder.get_environ()), route, params, claims_)


def sample_event(name: str, **overrides: Any) -> dict:
    """A sample event from events/ (the files `sam local invoke -e` takes), with top-level overrides."""
    event = json.loads((EVENTS / name).read_text())
    event = copy.deepcopy(event)
    event.update(overrides)
    return event


def body_of(response: dict) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


def samples(folder: str) -> list[Path]:
    return sorted((EVENTS / folder).glob("*.json"))


__all__ = ["Function", "claims", "http_event", "http_routes", "mocked_stack", "sample_event", "body_of", "samples",
           "Path"]


def seed_campaign(tenant: str = "t1", app: str = "app1", campaign_id: str = "c1") -> str:
    """A campaign to generate codes for (generation refuses an unknown campaign), written as the campaigns
    dal keys it; safe to repeat."""
    from marketing.campaigns.dal import campaign_key
    from marketing.core import dynamo
    from marketing.core.identity import scope_of

    dynamo.table().put_item(Item={**campaign_key(scope_of(tenant, app), campaign_id), "campaign_id": campaign_id,
                                  "name": campaign_id, "status": "ACTIVE"})
    return campaign_id
# --- which items a DynamoDB request writes or condition-checks (tests and bench/contention.py) ---
_WRITES = {"TransactWriteItems", "UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem"}


def _key(attrs: dict) -> tuple[str, str]:
    return attrs["pk"]["S"], attrs["sk"]["S"]


def touched_items(operation: str, body: dict) -> list[tuple[tuple[str, str], dict]]:
    """Each item a write request touches, as ((pk, sk), index partitions it is written under), from the
    request's wire body (low-level typed JSON). Index partitions are known for puts only."""
    if operation not in _WRITES:
        return []
    actions: list[tuple[str, dict]] = []
    if operation == "TransactWriteItems":
        actions = [next(iter(a.items())) for a in body["TransactItems"]]
    elif operation == "BatchWriteItem":
        actions = [("Put", r["PutRequest"]) if "PutRequest" in r else ("Delete", r["DeleteRequest"])
                   for requests in body["RequestItems"].values() for r in requests]
    else:
        actions = [(operation.removesuffix("Item"), body)]
    touched = []
    for kind, action in actions:
        item = action.get("Item") or action["Key"]
        if "pk" not in item:  # another table (idempotency records)
            continue
        indexed = {name: value["S"] for name, value in item.items() if name.endswith("pk") and name != "pk"}
        touched.append((_key(item), indexed if kind == "Put" else {}))
    return touched


@contextmanager
def recording_touches(client) -> Iterator[list[tuple[str, tuple[tuple[str, str], dict]]]]:
    """Every (operation, touched item) of the DynamoDB requests `client` sends inside the block."""
    touches: list = []

    def record(model, params, **_):
        body = json.loads(params.get("body") or b"{}")
        touches.extend((model.name, item) for item in touched_items(model.name, body))

    client.meta.events.register("before-call.dynamodb", record)
    try:
        yield touches
    finally:
        client.meta.events.unregister("before-call.dynamodb", record)
