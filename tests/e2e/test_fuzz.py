"""Schemathesis over the OpenAPI document the local stack serves (`/docs/openapi.json`): `make fuzz` runs this
module alone, `make test` runs it with everything else.

Every operation, with an admin token of a tenant seeded with real resources (path and query parameters draw
from their ids most of the time, so requests reach past the 404s), a fixed seed and a time budget. Checks: no
5xx (`not_a_server_error`), and every answer as the document tells it: its status is documented, its media
type and its body match (`status_code_conformance`, `content_type_conformance`, `response_schema_conformance`),
and an operation that answered 2xx refuses the same request without a token or with an invalid one, unless the
document says it takes none (`ignored_auth`). Requests go one at a time (one worker). On a failure,
schemathesis' report names each case with a curl line.

The fuzzer gets a local stack of its own: the thousands of items it writes would slow every later test (the
embedded AWS reads every item of a table to answer a query). For the same reason a batch of redeem codes is
kept small: one request may ask for 100,000 codes, which the batch worker then writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import running_local_stack
from tests.e2e.seeding import seed_tenant

SEED = 20261202
# Within make test's 20 minutes; FUZZ_SECONDS=900 fuzzes longer (it found more in the first 400 s).
BUDGET_SECONDS = int(os.environ.get("FUZZ_SECONDS", "150"))
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
          "ignored_auth")
DRAW_SEEDED = 0.7  # how often a parameter takes a seeded id rather than a generated value
SMALL_COUNTS = [1, 2, 1000, 1001]  # codes in a batch: at most 1,000 are made at once, more in the background


def toml(value: Any) -> str:
    """TOML for the few shapes the config needs (a JSON string is a TOML basic string)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def config(ids: dict[str, list]) -> str:
    """schemathesis.toml: the token comes from the environment, ids from the seeded tenant."""
    sections = {
        "auth.openapi.bearer": {"bearer": "${FUZZ_TOKEN}"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "dictionaries": {**{name: {"values": values} for name, values in ids.items()},
                         "count": {"values": SMALL_COUNTS}},
        "parameters": {**{name: {"dictionary": name, "probability": DRAW_SEEDED} for name in ids},
                       "body.count": {"dictionary": "count", "probability": 1.0}},
    }
    lines = [f"seed = {SEED}", f"max-time = {BUDGET_SECONDS}", "workers = 1", "request-timeout = 30", ""]
    for section, table in sections.items():
        lines += [f"[{section}]", *(f"{json.dumps(k)} = {toml(v)}" for k, v in table.items()), ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzzed_stack():
    with running_local_stack() as stack:
        yield stack


def test_every_operation_answers_as_documented_and_never_a_server_error(fuzzed_stack, tmp_path: Path):
    tenant = f"t-fuzz-{uuid.uuid4().hex[:8]}"
    ids = seed_tenant(fuzzed_stack, tenant, copies=3)
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(config(ids))
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(settings), "--no-color", "run",
         f"{fuzzed_stack.api_url}/docs/openapi.json"],
        env={**os.environ, "FUZZ_TOKEN": fuzzed_stack.token(tenant, sub="ops", roles="admin")},
        cwd=tmp_path, capture_output=True, text=True, timeout=BUDGET_SECONDS + 180)  # its cache stays out of the repo
    assert run.returncode == 0, f"schemathesis failed:\n{run.stdout[-30000:]}\n{run.stderr[-5000:]}"
