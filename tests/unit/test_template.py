"""The template is the single source of truth: it lints, and every function in it can run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from local_stack.functions import function_specs, load_module
from local_stack.provision import plan
from local_stack.template import LOCAL_PARAMETERS, ROOT, TEMPLATE, load, merged_function_properties, resources
from tools import operations

TEMPLATE_DICT = load()
SPECS = function_specs(TEMPLATE_DICT, plan(TEMPLATE_DICT, "test"), "test")


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE), "--append-rules", "cfn_lint_serverless.rules"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_globals_target_arm64_python313_with_tracing_and_the_layer():
    function = TEMPLATE_DICT["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active"
    assert function["Layers"] == [{"Ref": "SharedLayer"}]
    layer = TEMPLATE_DICT["Resources"]["SharedLayer"]
    # layers/shared/Makefile: aarch64 cp313 wheels and python3.13 bytecode (tests/packaging checks the build)
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert "build-SharedLayer:" in (ROOT / "layers" / "shared" / "Makefile").read_text()
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.logical_id)
def test_every_function_has_an_importable_handler_and_a_sample_event(spec, stack):
    module = load_module(spec)
    assert callable(getattr(module, spec.handler.rsplit(".", 1)[1]))
    samples = sorted((ROOT / "events" / spec.code_dir.name).glob("*.json"))
    assert samples, f"events/{spec.code_dir.name}/ has no sample event"
    routes = {f"{e['Properties'].get('Method', 'ANY').upper()} {e['Properties']['Path']}"
              for e in spec.events.values() if e["Type"] == "HttpApi"}
    for sample in samples:
        event = json.loads(sample.read_text())
        if "routeKey" in event:
            assert event["routeKey"] in routes, f"{sample.name} names a route its function does not serve"


@pytest.mark.parametrize("logical_id", list(resources(TEMPLATE_DICT, "AWS::Serverless::Function")))
def test_least_privilege(logical_id):
    policies = TEMPLATE_DICT["Resources"][logical_id]["Properties"].get("Policies", [])
    for policy in policies:
        assert not isinstance(policy, str) or "FullAccess" not in policy
        if isinstance(policy, dict) and "Statement" in policy:
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in a for a in actions), f"{logical_id} grants a wildcard action"
                for action in actions:
                    assert action not in ("dynamodb:Scan", "dynamodb:DeleteTable"), action
        if isinstance(policy, dict):
            assert "DynamoDBCrudPolicy" not in policy, f"{logical_id}: CRUD grants Scan and DeleteItem"


def test_table_design():
    table = TEMPLATE_DICT["Resources"]["Table"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_code_knows_the_tables_key_attributes():
    # dynamo.entity strips them from items and pagination checks page tokens against them.
    from marketing.core import dynamo

    table = TEMPLATE_DICT["Resources"]["Table"]["Properties"]
    assert tuple(k["AttributeName"] for k in table["KeySchema"]) == dynamo.TABLE_KEY
    assert {i["IndexName"]: tuple(k["AttributeName"] for k in i["KeySchema"])
            for i in table["GlobalSecondaryIndexes"]} == dynamo.INDEX_KEYS


def test_http_api_uses_a_jwt_authorizer_and_only_health_signed_webhooks_and_the_console_are_public():
    api = TEMPLATE_DICT["Resources"]["HttpApi"]["Properties"]["Auth"]
    assert api["DefaultAuthorizer"] == "JwtAuthorizer"
    public = [f"{s.logical_id}.{name}" for s in SPECS for name, e in s.events.items()
              if e["Type"] == "HttpApi" and e["Properties"].get("Auth", {}).get("Authorizer") == "NONE"]
    # CPS platforms authenticate their webhooks with an HMAC signature instead of a JWT; the console's static
    # files are public (the page signs in, and each API call it makes carries the operator's token).
    assert public == ["HealthFunction.Health", "CpsWebhookFunction.OrderWebhook", "ConsoleFunction.ConsoleRoot",
                      "ConsoleFunction.ConsoleFiles"]


def test_only_the_functions_that_page_may_read_the_page_token_key():
    # Every function that hands out page tokens signs them with the template's generated secret, and only those
    # functions may read it (least privilege): nothing else needs the key.
    secret = TEMPLATE_DICT["Resources"]["PageTokenSecret"]["Properties"]
    assert "GenerateSecretString" in secret and "SecretString" not in secret
    for spec in SPECS:
        pages = "next_token" in (spec.code_dir / "app.py").read_text()
        props = TEMPLATE_DICT["Resources"][spec.logical_id]["Properties"]
        variables = props.get("Environment", {}).get("Variables", {})
        readers = [p for p in props.get("Policies", []) if isinstance(p, dict) and
                   p.get("AWSSecretsManagerGetSecretValuePolicy") == {"SecretArn": {"Ref": "PageTokenSecret"}}]
        assert (variables.get("PAGE_TOKEN_SECRET_ARN") == {"Ref": "PageTokenSecret"}) == pages, spec.logical_id
        assert len(readers) == (1 if pages else 0), spec.logical_id


def test_the_rate_limits_the_template_sets_are_the_codes_defaults():
    from marketing.ratelimit import service as ratelimit

    variables = {**TEMPLATE_DICT["Resources"]["TrackApiFunction"]["Properties"]["Environment"]["Variables"],
                 **TEMPLATE_DICT["Resources"]["StatsIntakeFunction"]["Properties"]["Environment"]["Variables"]}
    for route, default in ratelimit.DEFAULTS.items():
        assert (int(variables[f"RATE_LIMIT_{route}"]), int(variables[f"RATE_LIMIT_{route}_WINDOW_SECONDS"])) == \
            (default.units, default.window_seconds), route


# --- operations (issue 11) ---
RESOURCES = TEMPLATE_DICT["Resources"]
PARAMETERS = TEMPLATE_DICT["Parameters"]
FUNCTIONS = resources(TEMPLATE_DICT, "AWS::Serverless::Function")
ALARMS = resources(TEMPLATE_DICT, "AWS::CloudWatch::Alarm")
DEPLOY_NAMED = ("JwtIssuer", "JwtAudience", "ShareBaseUrl", "RewardSenderEmail")


def props(logical_id: str) -> dict:
    return RESOURCES[logical_id].get("Properties", {})


def function_props(logical_id: str) -> dict:
    return merged_function_properties(TEMPLATE_DICT, props(logical_id))


def events_of(kind: str) -> list[tuple[str, str, dict]]:
    return [(fn, name, event.get("Properties", {})) for fn in FUNCTIONS
            for name, event in props(fn).get("Events", {}).items() if event["Type"] == kind]


def default(value: dict) -> str:
    assert set(value) == {"Ref"}, value
    return PARAMETERS[value["Ref"]]["Default"]


@pytest.mark.parametrize("name", DEPLOY_NAMED)
def test_identity_sender_and_links_have_no_default_and_refuse_the_local_values(name):
    parameter = PARAMETERS[name]
    assert "Default" not in parameter, f"{name}: a default would reach a deploy"
    pattern = re.compile(parameter["AllowedPattern"])
    assert not pattern.fullmatch(LOCAL_PARAMETERS[name]), f"{name}: the local value would pass"
    real = {"JwtIssuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
            "JwtAudience": "4bq3ht0n5ceuqqgr3o5tlsob1d", "ShareBaseUrl": "https://s.acme.com/s",
            "RewardSenderEmail": "rewards@mail.acme.com"}[name]
    assert pattern.fullmatch(real)


def test_samconfig_names_region_tags_and_where_each_environment_sets_its_parameters():
    text = (ROOT / "samconfig.toml").read_text()
    config = tomllib.loads(text)
    for env, section in (("default", text.split("[prod.global.parameters]")[0]),
                         ("prod", text.split("[prod.global.parameters]")[1])):
        assert config[env]["global"]["parameters"]["region"]
        deploy = config[env]["deploy"]["parameters"]
        assert any(t.startswith("stage=") for t in deploy["tags"])
        assert any(p.startswith("Stage=") for p in deploy["parameter_overrides"])
        for name in DEPLOY_NAMED:  # shown, to be filled in per environment (commented out: no fake value)
            assert re.search(rf'^\s*# "{name}=', section, re.M), f"{env}: where is {name} set?"


def test_the_generated_operations_section_is_current():
    _, current, _ = operations.split(TEMPLATE.read_text())
    assert current == operations.render(operations.generate(TEMPLATE_DICT)), "run `make operations`"


def test_every_alarm_notifies_the_alarm_topic_and_email_is_optional():
    assert ALARMS
    for name, alarm in ALARMS.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    assert RESOURCES["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    assert PARAMETERS["AlarmEmail"]["Default"] == ""


def alarm_on(namespace: str, metric: str, dimension_value) -> list[str]:
    found = []
    for name, alarm in ALARMS.items():
        p = alarm["Properties"]
        stats = [p] if "MetricName" in p else [q["MetricStat"]["Metric"] for q in p.get("Metrics", [])
                                                  if "MetricStat" in q]
        for s in stats:
            values = [d["Value"] for d in s.get("Dimensions", [])]
            if s["Namespace"] == namespace and s["MetricName"] == metric and dimension_value in values:
                found.append(name)
    return found


@pytest.mark.parametrize("fn", list(FUNCTIONS))
def test_every_function_has_error_and_throttle_alarms_and_a_log_group_with_retention(fn):
    assert alarm_on("AWS/Lambda", "Errors", {"Ref": fn}) and alarm_on("AWS/Lambda", "Throttles", {"Ref": fn})
    groups = [p["Properties"] for p in resources(TEMPLATE_DICT, "AWS::Logs::LogGroup").values()]
    assert {"LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{fn}}}"},
            "RetentionInDays": {"Ref": "LogRetentionDays"}} in groups
    assert function_props(fn)["LoggingConfig"] == {"LogFormat": "JSON"}
    assert PARAMETERS["LogRetentionDays"]["Default"] == 30


def dead_letter_queues() -> set[str]:
    found = {props(q)["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
             for q in resources(TEMPLATE_DICT, "AWS::SQS::Queue") if "RedrivePolicy" in props(q)}
    for fn in FUNCTIONS:
        failure = props(fn).get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        if failure:
            found.add(failure["Destination"]["Fn::GetAtt"][0])
    for _, _, event in events_of("DynamoDB"):  # a stream mapping's records given up on
        found.add(event["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0])
    for _, _, event in events_of("EventBridgeRule") + events_of("Schedule"):
        found.add(event["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    for rule in resources(TEMPLATE_DICT, "AWS::Events::Rule"):
        found |= {t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] for t in props(rule)["Targets"]}
    return found


def test_every_queue_is_watched_by_age_or_depth():
    dlqs = dead_letter_queues()
    for queue in resources(TEMPLATE_DICT, "AWS::SQS::Queue"):
        name = {"Fn::GetAtt": [queue, "QueueName"]}
        if queue in dlqs:
            assert alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", name), f"{queue}: DLQ not alarmed"
        else:
            assert "RedrivePolicy" in props(queue), f"{queue}: a work queue without a DLQ"
            assert alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage", name), f"{queue}: age not alarmed"


def test_api_table_and_rule_delivery_alarms():
    api = {"Ref": "HttpApi"}
    assert alarm_on("AWS/ApiGateway", "5xx", api)
    latency = [ALARMS[n]["Properties"] for n in alarm_on("AWS/ApiGateway", "Latency", api)]
    assert latency and latency[0]["ExtendedStatistic"] == "p99"
    for table in resources(TEMPLATE_DICT, "AWS::DynamoDB::Table"):
        assert alarm_on("AWS/DynamoDB", "WriteThrottleEvents", {"Ref": table})
        assert alarm_on("AWS/DynamoDB", "ReadThrottleEvents", {"Ref": table})
    rules = list(resources(TEMPLATE_DICT, "AWS::Events::Rule")) + [
        fn + name for fn, name, _ in events_of("EventBridgeRule") + events_of("Schedule")]
    for rule in rules:
        delivered = [n for n in ALARMS if json.dumps({"Fn::GetAtt": [rule, "Arn"]}) in json.dumps(ALARMS[n])]
        assert delivered and "FailedInvocations" in json.dumps(ALARMS[delivered[0]]), f"{rule}: not alarmed"


def test_the_dashboard_shows_every_business_metric_the_code_emits():
    body = props("OperationsDashboard")["DashboardBody"]["Fn::Sub"]
    emitted = set(re.findall(r'add_metric\(name="(\w+)"', "".join(
        p.read_text() for p in (ROOT / "layers" / "shared" / "marketing").rglob("*.py"))))
    assert {"RedeemCodesRedeemed", "RewardsGranted", "StatsEventsCounted", "CpsLedgerEntries"} <= emitted
    assert all(f'"{name}"' in body for name in emitted)


@pytest.mark.parametrize(("fn", "event", "source"), events_of("SQS"), ids=lambda v: v if isinstance(v, str) else "")
def test_queue_event_sources_are_bounded_and_their_batches_fit_the_timeout(fn, event, source):
    assert int(default(source["ScalingConfig"]["MaximumConcurrency"])) >= 2
    timeout = int(function_props(fn)["Timeout"])
    spec = next(s for s in SPECS if s.logical_id == fn)
    processor = load_module(spec).processor
    # the consumer stops taking records when time runs low, and a full batch's worst case fits anyway
    assert processor.worst_case(int(source["BatchSize"])) < timeout
    queue = source["Queue"]["Fn::GetAtt"][0]
    assert int(props(queue)["VisibilityTimeout"]) >= 6 * timeout


def test_the_asynchronous_task_engine_has_reserved_concurrency_that_can_be_switched_off():
    reserved = props("TaskTriggerFunction")["ReservedConcurrentExecutions"]
    assert reserved == {"Fn::If": ["ReservesTaskTrigger", {"Ref": "TaskTriggerReservedConcurrency"},
                                   {"Ref": "AWS::NoValue"}]}
    assert int(PARAMETERS["TaskTriggerReservedConcurrency"]["Default"]) > 0


def test_every_rule_target_has_a_dlq_and_a_retry_policy_and_async_functions_keep_their_failures():
    for rule in resources(TEMPLATE_DICT, "AWS::Events::Rule"):
        for target in props(rule)["Targets"]:
            assert "DeadLetterConfig" in target and "RetryPolicy" in target, rule
    asynchronous = set()
    for fn, name, event in events_of("EventBridgeRule") + events_of("Schedule"):
        assert "DeadLetterConfig" in event and "RetryPolicy" in event, f"{fn}.{name}"
        asynchronous.add(fn)
    for fn in asynchronous:
        assert props(fn)["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS", fn


def test_the_api_logs_access_throttles_every_route_and_the_open_ones_tighter():
    api = props("HttpApi")
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]}
    assert props("HttpApiAccessLogs")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    rate = int(default(api["DefaultRouteSettings"]["ThrottlingRateLimit"]))
    assert int(default(api["DefaultRouteSettings"]["ThrottlingBurstLimit"])) >= rate
    open_routes = {f"{fn}.{name}": e for fn, name, e in events_of("HttpApi")
                   if e.get("Auth", {}).get("Authorizer") == "NONE" and e["Path"] != "/health"
                   or e["Path"] == "/v1/events"}
    assert len(open_routes) == 4, open_routes  # the CPS webhook, the event intake and the console's files
    for route, event in open_routes.items():
        assert int(default(event["RouteSettings"]["ThrottlingRateLimit"])) < rate, route


def test_cors_is_a_parameter_and_off_by_default():
    assert PARAMETERS["CorsAllowOrigins"]["Default"] == ""
    condition, allowed, none = props("HttpApi")["CorsConfiguration"]["Fn::If"]
    assert (condition, allowed["AllowOrigins"], none) == (
        "HasCors", {"Fn::Split": [",", {"Ref": "CorsAllowOrigins"}]}, {"Ref": "AWS::NoValue"})


def test_the_table_is_protected_and_its_index_projection_is_what_its_queries_read():
    table = props("Table")
    assert table["DeletionProtectionEnabled"] is True
    assert RESOURCES["Table"]["DeletionPolicy"] == "Retain"
    # Every index query answers whole entities (listings): narrowing would cost a GetItem per item.
    assert [i["Projection"] for i in table["GlobalSecondaryIndexes"]] == [{"ProjectionType": "ALL"}] * 2
    assert "index" in (ROOT / "docs" / "operations.md").read_text()


def test_resource_arns_are_narrow_and_cps_pull_credentials_are_a_secret():
    text = json.dumps({fn: props(fn).get("Policies", []) for fn in FUNCTIONS})
    assert "/index/*" not in text and "identity/*" not in text
    assert not resources(TEMPLATE_DICT, "AWS::SSM::Parameter")
    assert RESOURCES["CpsPullSourcesSecret"]["Type"] == "AWS::SecretsManager::Secret"
    assert props("CpsPullFunction")["Environment"]["Variables"]["CPS_PULL_SOURCES_SECRET"] == {
        "Ref": "CpsPullSourcesSecret"}


def test_the_bus_keeps_an_archive_for_replays():
    (archive,) = resources(TEMPLATE_DICT, "AWS::Events::Archive").values()
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}


def test_the_outbox_streams_new_outbox_items_to_a_publisher_that_keeps_its_failures():
    from marketing.core import events

    assert props("Table")["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    ((fn, _, stream),) = events_of("DynamoDB")
    assert fn == "OutboxPublisherFunction" and stream["Stream"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    # Only new outbox items, by the key the code writes: no other write, TTL deletion or rewrite invokes it
    (pattern,) = [json.loads(f["Pattern"]) for f in stream["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [events.OUTBOX_SK]}}}}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and stream["BisectBatchOnFunctionError"]
    assert 0 < stream["MaximumRetryAttempts"] <= 10 and stream["MaximumRecordAgeInSeconds"] <= 86400
    dlq = stream["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [dlq, "QueueName"]})
    assert alarm_on("AWS/Lambda", "IteratorAge", {"Ref": fn})
    # Least privilege: the publisher puts events and parks failures; it writes nothing to the table (no loop)
    statements = [s for p in props(fn)["Policies"] for s in p["Statement"]]
    assert sorted((s["Action"], json.dumps(s["Resource"])) for s in statements) == [
        ("events:PutEvents", json.dumps({"Fn::GetAtt": ["EventBus", "Arn"]})),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": [dlq, "Arn"]}))]


def test_only_the_publisher_and_the_trigger_route_put_events_directly():
    putting = {fn for fn in FUNCTIONS if "events:PutEvents" in json.dumps(props(fn).get("Policies", []))}
    # task.triggered follows no write; a bulk batch grant's transactions are full of grants, so its worker
    # publishes reward.granted on every delivery of a chunk instead of committing outbox items
    assert putting == {"OutboxPublisherFunction", "CampaignsApiFunction", "GrantBatchWorkerFunction"}
