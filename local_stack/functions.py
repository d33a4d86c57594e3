"""The template's functions: their settings (Globals merged), a Lambda context, and the import of a
function's module. The local stack runs them in containers (`local_stack.containers`, a process each);
the handler tests load them in their own process (`tests/support.py`).
"""

from __future__ import annotations

import importlib.util
import itertools
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

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
