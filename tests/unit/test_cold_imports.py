"""A function's cold start imports what its routes need, no more: each function's module is imported in a
fresh interpreter that sees only the layer's package (tracing off, as in tests and the local stack), and the
modules it loaded are checked against what that function may need. `make bench` times these imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local_stack.functions import function_specs
from local_stack.provision import plan
from local_stack.template import ROOT, load

TEMPLATE = load()
SPECS = {spec.logical_id: spec for spec in function_specs(TEMPLATE, plan(TEMPLATE, "imports"), "imports")}

# Heavy modules that no function needs to start: each is imported on first use by the rare route that needs it.
NEVER_AT_IMPORT = (
    "openpyxl",  # xlsx exports (rewards/files.py)
    "segno",  # QR codes (tracking/service.py)
    "aws_xray_sdk.core",  # Powertools' tracer provider, needed only when tracing is on (observability.py)
    "aws_lambda_powertools.event_handler.openapi.models",  # the OpenAPI document, served by /docs only
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    "moto", "pytest",  # test tooling never reaches the layer
)
CAPABILITIES = {"campaigns", "cps", "ratelimit", "rewards", "stats", "tracking"}
# The capabilities (packages of `marketing` besides core) each function's import may load.
NEEDS = {
    "HealthFunction": set(),
    "ConsoleFunction": set(),
    "TrackApiFunction": {"tracking", "ratelimit"},
    "CpsApiFunction": {"cps", "tracking", "ratelimit"},  # invite links and QR codes are tracking's
    "CpsWebhookFunction": {"cps", "tracking", "ratelimit"},
    "CpsPullFunction": {"cps", "tracking", "ratelimit"},
    "RewardsApiFunction": {"rewards"},
    "RedeemApiFunction": {"rewards", "campaigns"},  # code generation checks the campaign exists (campaigns.dal)
    "CodeBatchWorkerFunction": {"rewards", "campaigns"},
    "ReservationSweeperFunction": {"rewards"},
    "CampaignsApiFunction": {"campaigns", "rewards"},  # grants are rewards' items
    "TaskTriggerFunction": {"campaigns", "rewards"},
    "GrantWorkerFunction": {"campaigns", "rewards"},
    "GrantBatchWorkerFunction": {"campaigns", "rewards"},
    "StatsIntakeFunction": {"stats", "ratelimit"},
    "StatsConsumerFunction": {"stats", "ratelimit"},
    "StatsApiFunction": {"stats", "ratelimit"},
    "OutboxPublisherFunction": set(),  # puts stored entries on the bus: no capability
}

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded_by(logical_id: str) -> set[str]:
    spec = SPECS[logical_id]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_DEFAULT_REGION": "us-east-1",
           **spec.environment, "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONPATH": str(ROOT / "layers" / "shared")}
    # `-I`-like isolation without losing site-packages (the layer's requirements): the working directory is the
    # function's own folder, so neither the repository's root nor other functions are importable.
    out = subprocess.run([sys.executable, "-c", PROBE, str(spec.module_file)], capture_output=True, text=True,
                         env=env, cwd=spec.code_dir, check=True, timeout=120)
    return set(json.loads(out.stdout))


def test_every_function_is_listed():
    assert set(NEEDS) == set(SPECS)


@pytest.mark.parametrize("logical_id", sorted(NEEDS))
def test_cold_import_loads_only_what_the_function_needs(logical_id):
    loaded = modules_loaded_by(logical_id)

    heavy = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NEVER_AT_IMPORT))
    capabilities = {m.split(".")[1] for m in loaded if m.startswith("marketing.") and m.count(".") >= 1} & CAPABILITIES

    assert heavy == []
    assert capabilities <= NEEDS[logical_id], sorted(capabilities - NEEDS[logical_id])
