"""Cold import time of each function's handler module, without and with bytecode, in the same run.

Lambda's layer is read-only: a layer without `.pyc` files compiles every module it imports on every cold start,
which is why layers/shared/Makefile compiles the layer. This bench copies the layer's packages (this machine's
copies of requirements.txt and their dependencies, and our package) into a scratch folder without bytecode,
times each import in a fresh interpreter that sees only that folder (`-S -B`: no site-packages, nothing
written), then compiles the folder as the layer build does and times again. The baseline row is the bare import
of boto3 + Powertools + pydantic; "saved" is what bytecode saves, "vs baseline" each import with bytecode over
the baseline's (goal: at most GOAL).

The machine is shared: each figure is the CPU time of the import (other processes' load does not count, as it
would in wall time), the median of RUNS rounds, and each round times every probe once, so a burst of load
touches all rows alike. Tracing is off (`POWERTOOLS_TRACE_DISABLED`, as in tests and the local stack): in AWS,
with the template's `Tracing: Active`, Powertools' tracer imports the X-Ray SDK on top of these figures."""

from __future__ import annotations

import compileall
import importlib.metadata as metadata
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.support import table
from local_stack.functions import function_specs
from local_stack.provision import plan
from local_stack.template import ROOT, load

RUNS = 5
GOAL = 1.3
LAYER = ROOT / "layers" / "shared"
BASELINE = ("import boto3, pydantic, aws_lambda_powertools; "
            "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver; "
            "from aws_lambda_powertools.utilities.batch import BatchProcessor")


def _distributions() -> list[metadata.Distribution]:
    """The layer's requirements and everything they need, as installed here (extras followed)."""
    wanted = [Requirement(line) for line in (LAYER / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    found: dict[str, metadata.Distribution] = {}
    while wanted:
        requirement = wanted.pop()
        key = canonicalize_name(requirement.name)
        if key in found:
            continue
        found[key] = dist = metadata.distribution(requirement.name)
        extras = requirement.extras or {""}
        for line in dist.requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                wanted.append(needed)
    return list(found.values())


def _scratch_layer(root: Path) -> Path:
    site = root / "python"
    for dist in _distributions():
        for file in dist.files or []:
            if ".." in file.parts or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dist.locate_file(file), target)
    shutil.copytree(LAYER / "marketing", site / "marketing", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _time(code: str, env: dict[str, str]) -> float:
    probe = f"import time; t = time.process_time(); {code}; print(time.process_time() - t)"
    out = subprocess.run([sys.executable, "-S", "-B", "-c", probe], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _medians(probes: list[tuple[str, str]], env: dict[str, str]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name, _ in probes}
    for _ in range(RUNS):
        for name, code in probes:
            times[name].append(_time(code, env))
    return {name: statistics.median(values) for name, values in times.items()}


def run() -> list[str]:
    template = load()
    specs = function_specs(template, plan(template, "bench"), "bench")
    probes = [("boto3 + powertools + pydantic (baseline)", BASELINE)] + [
        (spec.logical_id, "import importlib.util as u; "
                          f"s = u.spec_from_file_location('app', {json.dumps(str(spec.module_file))}); "
                          "m = u.module_from_spec(s); s.loader.exec_module(m)") for spec in specs]
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as scratch:
        site = _scratch_layer(Path(scratch))
        env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONPATH": str(site)}
        for spec in specs:
            env.update(spec.environment)
        source = _medians(probes, env)
        compileall.compile_dir(str(site), quiet=1, workers=0,
                               invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled = _medians(probes, env)
    baseline = compiled[probes[0][0]]
    rows = [(name, f"{source[name] * 1000:.0f} ms", f"{compiled[name] * 1000:.0f} ms",
             f"{source[name] / compiled[name]:.1f}x", f"{compiled[name] / baseline:.2f}x",
             "" if compiled[name] <= GOAL * baseline else f"over {GOAL}x") for name, _ in probes]
    return [f"median of {RUNS} cold imports (CPU time), each in a fresh interpreter seeing only a copy of the layer",
            *table(rows, ("module", "no bytecode", "bytecode", "saved", "vs baseline", "goal"))]
