"""Runs the template's functions in this process, as Lambda would: a pool of containers per function.

A Powertools resolver keeps the current event on the app object, so one module instance must never serve
two requests at once. Like Lambda, each concurrent invocation gets its own container: its own import of the
function's `app.py` (the shared layer package is imported once, as a layer is read-only).
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from local_stack.template import ACCOUNT, REGION, ROOT, Resolver, merged_function_properties, physical_name

_instance_numbers = itertools.count()


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: dict[str, dict] = field(default_factory=dict)

    @property
    def module_file(self) -> Path:
        return self.code_dir / (self.handler.rsplit(".", 1)[0].replace(".", "/") + ".py")


def function_specs(template: dict, resolver: Resolver, stack_name: str) -> list[FunctionSpec]:
    specs = []
    for logical, res in template.get("Resources", {}).items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = merged_function_properties(template, res.get("Properties", {}))
        env = {k: str(resolver.resolve(v)) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        specs.append(FunctionSpec(
            logical_id=logical, name=physical_name(stack_name, logical), code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"], timeout=int(props.get("Timeout", 3)), memory=int(props.get("MemorySize", 128)),
            environment=env, events=props.get("Events", {}),
        ))
    return specs


class LambdaContext:
    def __init__(self, spec: FunctionSpec):
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}"
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + spec.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_module(spec: FunctionSpec) -> ModuleType:
    """A fresh import of the function's module under a unique name: one container."""
    unique = f"lambda_{spec.logical_id}_{next(_instance_numbers)}"
    module_spec = importlib.util.spec_from_file_location(unique, spec.module_file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


class FunctionRuntime:
    def __init__(self, spec: FunctionSpec):
        self.spec = spec
        self._idle: list[ModuleType] = []
        self._lock = threading.Lock()
        self.cold_starts = 0

    def _acquire(self) -> ModuleType:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.cold_starts += 1
        return load_module(self.spec)

    def invoke(self, event: Any) -> Any:
        container = self._acquire()
        try:
            handler = getattr(container, self.spec.handler.rsplit(".", 1)[1])
            return handler(event, LambdaContext(self.spec))
        finally:
            with self._lock:
                self._idle.append(container)

    def any_container(self) -> ModuleType:
        container = self._acquire()
        with self._lock:
            self._idle.append(container)
        return container
