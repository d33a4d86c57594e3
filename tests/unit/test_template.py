"""The template is the single source of truth: it lints, and every function in it can run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.functions import function_specs, load_module
from local_stack.provision import plan
from local_stack.template import ROOT, TEMPLATE, load, resources

TEMPLATE_DICT = load()
SPECS = function_specs(TEMPLATE_DICT, plan(TEMPLATE_DICT, "test"), "test")


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_globals_target_arm64_python313_with_tracing_and_the_layer():
    function = TEMPLATE_DICT["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active"
    assert function["Layers"] == [{"Ref": "SharedLayer"}]
    layer = TEMPLATE_DICT["Resources"]["SharedLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
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
