"""Creates the template's tables, queues, buses, buckets and rules in the embedded AWS (or in moto's
in-process mock, for tests), with names derived from the stack name. Nothing here restates a definition:
every property comes from `template.yaml`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_stack import moto_fixes
from local_stack.template import ACCOUNT, REGION, Resolver, parameter_defaults, physical_name, resources

moto_fixes.apply()  # tests and benches provision into moto's in-process mock

ClientFactory = Callable[[str], Any]


@dataclass
class Stack:
    name: str
    resolver: Resolver
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id → queue URL

    def ref(self, logical_id: str) -> str:
        return self.resolver.ref(logical_id)


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def plan(template: dict, stack_name: str, parameters: dict[str, str] | None = None) -> Resolver:
    """Physical names and attributes of every resource, before anything is created."""
    resolver = Resolver(parameter_defaults(template, parameters))
    for logical, res in template.get("Resources", {}).items():
        kind, props = res["Type"], res.get("Properties", {})
        name = physical_name(stack_name, logical)
        if kind == "AWS::DynamoDB::Table":
            name = props.get("TableName", name)
            arn = _arn("dynamodb", f"table/{name}")
            resolver.refs[logical] = name
            resolver.attrs[logical] = {"Arn": arn, "StreamArn": f"{arn}/stream/local"}
        elif kind == "AWS::SQS::Queue":
            name = props.get("QueueName", name)
            resolver.refs[logical] = f"{{endpoint}}/{ACCOUNT}/{name}"  # completed once created
            resolver.attrs[logical] = {"Arn": _arn("sqs", name), "QueueName": name}
        elif kind == "AWS::Events::EventBus":
            resolver.refs[logical] = name  # Name may use !Sub: resolved in a second pass below
        elif kind == "AWS::S3::Bucket":
            name = props.get("BucketName", name.lower())
            resolver.refs[logical] = name
            resolver.attrs[logical] = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        elif kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            resolver.refs[logical] = name
            resolver.attrs[logical] = {"Arn": _arn("lambda", f"function:{name}")}
        elif kind == "AWS::SNS::Topic":
            resolver.refs[logical] = _arn("sns", name)
            resolver.attrs[logical] = {"TopicArn": _arn("sns", name), "TopicName": name}
        else:
            resolver.refs[logical] = name
            resolver.attrs[logical] = {"Arn": _arn("local", name)}
    for logical, res in resources(template, "AWS::Events::EventBus").items():
        name = resolver.resolve(res["Properties"].get("Name", resolver.refs[logical]))
        resolver.refs[logical] = name
        resolver.attrs[logical] = {"Arn": _arn("events", f"event-bus/{name}"), "Name": name}
    return resolver


def _create_table(ddb, name: str, props: dict) -> None:
    kwargs = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                                    "LocalSecondaryIndexes", "StreamSpecification") if k in props}
    if "StreamSpecification" in kwargs:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **kwargs["StreamSpecification"]}
    ddb.create_table(TableName=name, BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"), **kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


def _create_queue(sqs, props: dict, name: str, resolver: Resolver) -> str:
    attributes = {}
    for key, value in props.items():
        if key in ("QueueName", "Tags"):
            continue
        value = resolver.resolve(value)
        attributes[key] = json.dumps(value) if isinstance(value, dict) else str(value)
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def create(template: dict, client: ClientFactory, stack_name: str = "local",
           parameters: dict[str, str] | None = None) -> Stack:
    """Create every stateful resource of the template. Rules whose targets are functions are created by
    the local stack's delivery (they need a shadow queue); rules that target queues are created here."""
    resolver = plan(template, stack_name, parameters)
    stack = Stack(stack_name, resolver)
    for logical, res in resources(template, "AWS::DynamoDB::Table").items():
        _create_table(client("dynamodb"), resolver.refs[logical], resolver.resolve(res["Properties"]))
    sqs = client("sqs")
    # Dead-letter queues first: a redrive policy names its DLQ by ARN.
    queues = sorted(resources(template, "AWS::SQS::Queue").items(),
                    key=lambda item: "RedrivePolicy" in item[1].get("Properties", {}))
    for logical, res in queues:
        url = _create_queue(sqs, res.get("Properties", {}), resolver.attrs[logical]["QueueName"], resolver)
        resolver.refs[logical] = url
        resolver.attrs[logical]["QueueUrl"] = url
        stack.queue_urls[logical] = url
    for logical in resources(template, "AWS::Events::EventBus"):
        client("events").create_event_bus(Name=resolver.refs[logical])
    for logical in resources(template, "AWS::S3::Bucket"):
        client("s3").create_bucket(Bucket=resolver.refs[logical])
    for logical, res in resources(template, "AWS::Events::Rule").items():
        _create_rule(client("events"), physical_name(stack_name, logical), resolver.resolve(res["Properties"]))
    return stack


def _create_rule(events, name: str, props: dict) -> None:
    kwargs: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
    if "EventBusName" in props:
        kwargs["EventBusName"] = props["EventBusName"]
    if "EventPattern" in props:
        kwargs["EventPattern"] = json.dumps(props["EventPattern"])
    if "ScheduleExpression" in props:
        kwargs["ScheduleExpression"] = props["ScheduleExpression"]
    events.put_rule(**kwargs)
    targets = [{k: (json.dumps(v) if isinstance(v, dict) and k == "Input" else v) for k, v in t.items()}
               for t in props.get("Targets", [])]
    if targets:
        bus = {"EventBusName": props["EventBusName"]} if "EventBusName" in props else {}
        events.put_targets(Rule=name, Targets=targets, **bus)
