"""Run every benchmark suite and print its figures. `python -m bench [suite ...]` runs a subset."""

from __future__ import annotations

import importlib
import sys
import time

# One module per suite; each exposes `run() -> list[str]` (lines to print).
SUITES = ["bench.imports", "bench.requests", "bench.tracking", "bench.cps", "bench.rewards", "bench.contention",
          "bench.campaigns", "bench.stats"]


def main(selected: list[str]) -> None:
    for name in SUITES:
        if selected and name.rsplit(".", 1)[1] not in selected:
            continue
        started = time.perf_counter()
        print(f"== {name.rsplit('.', 1)[1]}", flush=True)
        for line in importlib.import_module(name).run():
            print("  " + line, flush=True)
        print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
