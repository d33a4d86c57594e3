"""The local stack's own guarantees: atomic requests to the embedded AWS, intrinsics resolved from the
template, functions in containers that share nothing (a process each, reused warm, bounded), and delivery
from queues and rules to functions with partial failures, retries and DLQs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from local_stack.aws import EmbeddedAws
from local_stack.containers import FunctionError, FunctionRuntime, start_fork_server
from local_stack.functions import FunctionSpec
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


# --- containers: tests/fixtures/containers/app.py answers its pid, its echo and what its container counted ---

PROBE = FunctionSpec(logical_id="Probe", name="test-Probe", code_dir=ROOT / "tests/fixtures/containers",
                     handler="app.handler", timeout=5, memory=128, environment={})


@pytest.fixture
def probe():
    start_fork_server()
    runtime = FunctionRuntime(PROBE, {"PATH": os.environ.get("PATH", ""), "WHO": "probe"}, max_containers=2,
                              timeout_scale=1)
    yield runtime
    runtime.close()


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def gone(*pids: int) -> bool:
    return wait_for(lambda: not any(running(pid) for pid in pids), timeout=10)


def test_an_idle_container_serves_the_next_invocation_warm(probe):
    first, second = probe.invoke({}), probe.invoke({})
    assert first["pid"] == second["pid"] != os.getpid()
    assert (first["invocations"], second["invocations"], probe.cold_starts) == (1, 2, 1)


def test_concurrent_invocations_get_processes_of_their_own(probe):
    # Given two invocations at once, each keeping its event on a class while it sleeps (as Powertools does)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(probe.invoke, [{"echo": "a", "sleep": 0.5}, {"echo": "b", "sleep": 0.5}]))
    # Then each ran in a container of its own, a cold start each, and answered its own event
    assert [a["echo"] for a in answers] == ["a", "b"]
    assert answers[0]["pid"] != answers[1]["pid"] and probe.cold_starts == 2


def test_beyond_the_bound_an_invocation_waits_for_a_free_container(probe):
    # Given at most 2 containers, when 6 invocations come at once
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(probe.invoke, [{"echo": n, "sleep": 0.3} for n in range(6)]))
    # Then every one is answered, by 2 containers only
    assert [a["echo"] for a in answers] == list(range(6))
    assert len({a["pid"] for a in answers}) == 2 and probe.cold_starts == 2
    assert sorted(a["invocations"] for a in answers) == [1, 1, 2, 2, 3, 3]


def test_a_container_that_dies_while_idle_is_replaced(probe):
    pid = probe.invoke({})["pid"]
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    answer = probe.invoke({"echo": "after"})
    assert (answer["echo"], answer["invocations"], probe.cold_starts) == ("after", 1, 2)
    assert answer["pid"] != pid and pid not in probe.pids


def test_a_template_that_dies_is_replaced(probe):
    # Given a container, and its function's template (the process it was forked from) killed
    pid = probe.invoke({})["pid"]
    template = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(template, signal.SIGKILL)
    assert gone(template)
    # When two invocations come at once, so one needs a new container
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(probe.invoke, [{"echo": "a", "sleep": 0.3}, {"echo": "b", "sleep": 0.3}]))
    # Then both are answered, one by a container of a new template
    assert [a["echo"] for a in answers] == ["a", "b"] and pid in {a["pid"] for a in answers}
    assert probe.cold_starts == 2


def test_a_container_that_dies_mid_invocation_fails_it_and_is_replaced(probe):
    pid = probe.invoke({})["pid"]
    with pytest.raises(FunctionError) as failed:
        probe.invoke({"exit": True})
    assert failed.value.error_type == "Runtime.ExitError"
    assert pid not in probe.pids and gone(pid)
    assert probe.invoke({})["pid"] != pid and probe.cold_starts == 2


def test_a_handler_error_comes_back_and_the_container_stays_warm(probe):
    pid = probe.invoke({})["pid"]
    with pytest.raises(FunctionError) as failed:
        probe.invoke({"fail": True})
    assert (failed.value.error_type, str(failed.value)) == ("ValueError", "ValueError: asked to fail")
    assert probe.invoke({"env": ["WHO"]}) == {"pid": pid, "invocations": 3, "echo": None, "env": {"WHO": "probe"}}


def test_an_invocation_past_its_timeout_fails_and_its_container_is_killed(probe):
    pid = probe.invoke({})["pid"]
    with pytest.raises(FunctionError) as failed:
        probe.invoke({"sleep": 60})  # the function's Timeout is 5 seconds
    assert failed.value.error_type == "Sandbox.Timedout"
    assert gone(pid) and probe.invoke({})["pid"] != pid


@pytest.mark.parametrize("unsafe", ["socket", "thread"])
def test_an_init_that_leaves_a_socket_or_a_thread_is_refused(unsafe):
    # Forked containers would share the connection or lose the thread: the init must build them lazily.
    spec = FunctionSpec(logical_id="Unsafe", name="test-Unsafe", code_dir=PROBE.code_dir, handler="unsafe.handler",
                        timeout=5, memory=128, environment={})
    start_fork_server()
    runtime = FunctionRuntime(spec, {"PATH": os.environ.get("PATH", ""), "UNSAFE": unsafe})
    try:
        with pytest.raises(FunctionError) as refused:
            runtime.invoke({})
        assert refused.value.error_type == "Local.ForkUnsafeInit" and runtime.pids == set()
    finally:
        runtime.close()


def test_close_ends_every_container(probe):
    with ThreadPoolExecutor(2) as pool:
        pids = {a["pid"] for a in pool.map(probe.invoke, [{"sleep": 0.3}] * 2)}
    assert len(pids) == 2 and pids == probe.pids
    probe.close()
    assert gone(*pids)
    with pytest.raises(FunctionError):
        probe.invoke({})


def test_each_function_sees_its_own_environment_and_the_local_aws(restore_environ):
    # Given two functions that set WHO differently (one process could not honour both)
    stack = LocalStack(ROOT / "tests/fixtures/containers/template.yaml", port=0, stack_name="cx").start()
    names = ["WHO", "SHARED", "AWS_ENDPOINT_URL", "AWS_REGION", "POWERTOOLS_TRACE_DISABLED", "AWS_LAMBDA_FUNCTION_NAME"]
    try:
        # When both run at once
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(lambda name: stack.runtimes[name].invoke({"env": names, "sleep": 0.3}),
                                     ["First", "Second"])
        pids = stack.runtimes["First"].pids | stack.runtimes["Second"].pids
    finally:
        stack.stop()
    # Then each saw its own variables, Globals merged, and the embedded AWS; never the Lambda-only name that
    # the layer takes to mean "in AWS"; this process's environment is left alone
    local = {"SHARED": "from-globals", "AWS_ENDPOINT_URL": stack.aws.endpoint, "AWS_REGION": "us-east-1",
             "POWERTOOLS_TRACE_DISABLED": "true", "AWS_LAMBDA_FUNCTION_NAME": None}
    assert (first["env"], second["env"]) == ({**local, "WHO": "first"}, {**local, "WHO": "second"})
    assert "WHO" not in os.environ
    # and stopping the stack ended every container
    assert len(pids) == 2 and gone(*pids)


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_sigterm_stops_the_stack_and_every_process_it_started():
    # Given `python -m local_stack` (what `make run` starts) with two containers of a function
    command = [sys.executable, "-m", "local_stack", "--template", "tests/fixtures/containers/template.yaml",
               "--port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = next(json.loads(line.split(" ", 1)[1]) for line in process.stdout
                     if line.startswith("LOCAL_STACK_READY "))
        threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its output flowing

        def invoke(_):
            return requests.post(f"{ready['api']}/_local/invoke/First", json={"sleep": 0.5}, timeout=60).json()

        with ThreadPoolExecutor(2) as pool:
            pids = {answer["pid"] for answer in pool.map(invoke, range(2))}
        started = descendants(process.pid)
        # (the fork server, the function's template, its two containers, multiprocessing's resource tracker)
        assert len(pids) == 2 and pids < started and len(started) >= 4
        # When it is told to stop, as the e2e fixture and `kill` do
        process.terminate()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    # Then nothing it started is left
    assert gone(*started)


def test_a_stream_mapping_filters_retries_from_the_failed_record_then_parks_its_range():
    from moto import mock_aws

    from local_stack import moto_fixes
    from local_stack.streams import stream_poller

    moto_fixes.apply()
    props = {"BatchSize": 10, "MaximumRetryAttempts": 1, "StartingPosition": "TRIM_HORIZON",
             "FilterCriteria": {"Filters": [{"Pattern": json.dumps(
                 {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": ["OUTBOX"]}}}})}]}}
    with mock_aws():
        client = lambda service: boto3.client(service, region_name="us-east-1")  # noqa: E731
        ddb, sqs = client("dynamodb"), client("sqs")
        ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST", KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]

        def put(pk: str, sk: str = "OUTBOX") -> dict:
            return {"Put": {"TableName": "t", "Item": {"pk": {"S": pk}, "sk": {"S": sk}}}}

        # Given outbox items a, b, c, an ordinary item, a rewrite of a, and a cancelled transaction's outbox item
        ddb.transact_write_items(TransactItems=[put("a"), put("x", "OTHER")])
        ddb.transact_write_items(TransactItems=[put("b"), put("c")])
        ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "OUTBOX"}})
        with pytest.raises(ClientError):
            ddb.transact_write_items(TransactItems=[put("d"), {"ConditionCheck": {
                "TableName": "t", "Key": {"pk": {"S": "x"}, "sk": {"S": "OTHER"}},
                "ConditionExpression": "attribute_not_exists(pk)"}}])
        seen: list[list[str]] = []

        def deliver(records: list[dict]) -> set[str]:  # b fails every time
            seen.append([r["dynamodb"]["Keys"]["pk"]["S"] for r in records])
            return {r["dynamodb"]["SequenceNumber"] for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == "b"}

        streams = boto3.client("dynamodbstreams", region_name="us-east-1",
                               endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com")
        poller = stream_poller(client, "t", props, deliver, dlq, streams=streams)
        while poller.poll_once():
            pass
        # Then only new outbox items are delivered, a failure is retried from the failed record, and after the
        # retries the rest of the batch goes to the on-failure queue (as a range) while the shard moves on
        assert seen == [["a", "b", "c"], ["b", "c"]]
        (parked,) = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=dlq)["Messages"]]
        assert parked["DDBStreamBatchInfo"]["batchSize"] == 2
        assert parked["requestContext"]["approximateInvokeCount"] == 2
