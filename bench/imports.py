"""Cold import time of each function's handler module, beside the bare import of boto3 + Powertools +
pydantic measured in the same run: the ratio is what our own code adds to a cold start."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from bench.support import table
from local_stack.functions import function_specs
from local_stack.provision import plan
from local_stack.template import ROOT, load

RUNS = 5
BASELINE = ("import boto3, pydantic, aws_lambda_powertools; "
            "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver; "
            "from aws_lambda_powertools.utilities.batch import BatchProcessor")


def _time(code: str, env: dict[str, str]) -> float:
    probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run() -> list[str]:
    template = load()
    specs = function_specs(template, plan(template, "bench"), "bench")
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "POWERTOOLS_TRACE_DISABLED": "true",
           "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}:{ROOT}"}
    for spec in specs:
        env.update(spec.environment)
    baseline = statistics.median(_time(BASELINE, env) for _ in range(RUNS))
    rows = [("boto3 + powertools + pydantic (baseline)", f"{baseline * 1000:.0f} ms", "1.00x")]
    for spec in specs:
        load_code = ("import importlib.util as u; "
                     f"s = u.spec_from_file_location('app', {json.dumps(str(spec.module_file))}); "
                     "m = u.module_from_spec(s); s.loader.exec_module(m)")
        seconds = statistics.median(_time(load_code, env) for _ in range(RUNS))
        rows.append((spec.logical_id, f"{seconds * 1000:.0f} ms", f"{seconds / baseline:.2f}x"))
    return [f"median of {RUNS} cold imports, each in a fresh interpreter",
            *table(rows, ("module", "import", "vs baseline"))]
