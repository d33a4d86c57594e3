"""The local stack's own guarantees: atomic requests to the embedded AWS, intrinsics resolved from the
template, and delivery from queues and rules to functions with partial failures, retries and DLQs."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError

from local_stack.aws import EmbeddedAws
from local_stack.stack import LocalStack
from local_stack.template import ROOT, Resolver, merged_function_properties


def client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def restore_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_embedded_aws_never_oversells_a_conditional_decrement():
    # Given a stock of 100 in the embedded AWS, and threads switching as often as Python allows
    aws = EmbeddedAws().start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        ddb = client(aws.endpoint, "dynamodb")
        ddb.create_table(TableName="stock", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        ddb.put_item(TableName="stock", Item={"pk": {"S": "item"}, "stock": {"N": "100"}})

        def take(_):
            try:
                ddb.update_item(TableName="stock", Key={"pk": {"S": "item"}},
                                UpdateExpression="SET stock = stock - :one", ConditionExpression="stock >= :one",
                                ExpressionAttributeValues={":one": {"N": "1"}})
                return True
            except ClientError:
                return False

        # When 40 threads take 300 units between them
        with ThreadPoolExecutor(40) as pool:
            taken = sum(pool.map(take, range(300)))
        # Then exactly the stock was taken
        left = ddb.get_item(TableName="stock", Key={"pk": {"S": "item"}})["Item"]["stock"]["N"]
        assert (taken, left) == (100, "0")
    finally:
        sys.setswitchinterval(interval)
        aws.stop()


def test_resolver_handles_ref_getatt_sub_and_join():
    resolver = Resolver({"Stage": "dev"}, refs={"Table": "t-name"}, attrs={"Table": {"Arn": "arn:t"}})
    assert resolver.resolve({"Ref": "Stage"}) == "dev"
    assert resolver.resolve({"Fn::GetAtt": ["Table", "Arn"]}) == "arn:t"
    assert resolver.resolve({"Fn::GetAtt": "Table.Arn"}) == "arn:t"
    assert resolver.resolve({"Fn::Sub": "${Table.Arn}/index/*"}) == "arn:t/index/*"
    assert resolver.resolve({"Fn::Sub": ["${X}-${AWS::Region}", {"X": {"Ref": "Table"}}]}) == "t-name-us-east-1"
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}) == "a-dev"
    with pytest.raises(KeyError):
        resolver.resolve({"Ref": "Missing"})


def test_globals_merge_as_sam_does():
    template = {"Globals": {"Function": {"Timeout": 5, "Layers": ["a"], "Environment": {"Variables": {"A": "1"}}}}}
    merged = merged_function_properties(template, {"Layers": ["b"], "Environment": {"Variables": {"B": "2"}}})
    assert merged == {"Timeout": 5, "Layers": ["a", "b"], "Environment": {"Variables": {"A": "1", "B": "2"}}}


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def test_queue_and_rule_delivery_with_partial_failures_and_dead_letters(restore_environ):
    stack = LocalStack(ROOT / "tests/fixtures/delivery/template.yaml", port=0, stack_name="fx",
                       retry_delay=0).start()
    try:
        sqs, events = stack.client("sqs"), stack.client("events")
        seen = stack.client("dynamodb")
        table = stack.stack.ref("Seen")

        def count(key: str) -> int:
            item = seen.get_item(TableName=table, Key={"id": {"S": key}}).get("Item")
            return int(item["n"]["N"]) if item else 0

        # Given a batch with one poison message among good ones
        url = stack.stack.queue_urls["Work"]
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": body} for i, body in enumerate(["a", "poison", "b", "c"])])
        # Then the good ones are handled once each, and the poison one reaches the DLQ after 2 receives
        assert wait_for(lambda: all(count(f"sqs:{b}") == 1 for b in "abc"))
        dlq = stack.stack.queue_urls["Dlq"]
        moved = wait_for(lambda: sqs.receive_message(QueueUrl=dlq).get("Messages"))
        assert [m["Body"] for m in moved] == ["poison"]
        assert all(count(f"sqs:{b}") == 1 for b in "abc")

        # An event matching the rule reaches the listener; one that fails is tried 3 times, then parked
        bus = stack.stack.ref("Bus")
        events.put_events(Entries=[
            {"EventBusName": bus, "Source": "fixture.source", "DetailType": "t", "Detail": json.dumps({"name": "ok"})},
            {"EventBusName": bus, "Source": "other", "DetailType": "t", "Detail": json.dumps({"name": "skip"})},
            {"EventBusName": bus, "Source": "fixture.source", "DetailType": "t",
             "Detail": json.dumps({"name": "bad", "fail": True})},
        ])
        assert wait_for(lambda: count("bus:ok") == 1 and count("bus:bad") == 3)
        time.sleep(1.5)
        assert (count("bus:ok"), count("bus:bad"), count("bus:skip")) == (1, 3, 0)
    finally:
        stack.stop()


def test_bus_to_queue_delivery_carries_the_whole_envelope():
    # AWS always sends `account`; Powertools' EventBridgeModel requires it (moto's default template drops it).
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
    from moto import mock_aws

    with mock_aws():
        sqs, events = boto3.client("sqs", region_name="us-east-1"), boto3.client("events", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="r", EventPattern=json.dumps({"source": ["x"]}))
        events.put_targets(Rule="r", Targets=[{"Id": "1", "Arn": arn}])
        events.put_events(Entries=[{"Source": "x", "DetailType": "d", "Detail": json.dumps({"a": 1})}])
        body = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    parsed = EventBridgeModel.model_validate(body)
    assert (parsed.account, parsed.detail_type, parsed.detail) == ("123456789012", "d", {"a": 1})
