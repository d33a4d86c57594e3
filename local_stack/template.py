"""Reads `template.yaml`, the single source of truth, with cfn-lint's CloudFormation-aware loader, and
resolves the few intrinsics the template uses (`!Ref`, `!GetAtt`, `!Sub`, `!Join`, `!If`-free)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT, REGION = "123456789012", "us-east-1"


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    from cfnlint.decode import decode  # here: the functions' containers import this module, never cfn-lint

    template, problems = decode(str(path))
    if problems or template is None:
        raise ValueError(f"cannot read {path}: {problems}")
    return _plain(template)


def _plain(value: Any) -> Any:
    """cfn-lint's node classes → plain dicts, lists and strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def resources(template: dict, *types: str) -> dict[str, dict]:
    return {name: res for name, res in template.get("Resources", {}).items() if res.get("Type") in types}


def physical_name(stack: str, logical_id: str) -> str:
    return f"{stack}-{logical_id}"


@dataclass
class Resolver:
    """Resolves intrinsics against parameter defaults (or overrides) and the stack's physical resources.
    `refs[logical]` is what `!Ref` gives; `attrs[logical][name]` what `!GetAtt logical.name` gives."""

    parameters: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "local", "AWS::NoValue": ""}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"cannot resolve !Ref {name}")

    def get_att(self, name: str, attribute: str) -> str:
        try:
            return self.attrs[name][attribute]
        except KeyError:
            raise KeyError(f"cannot resolve !GetAtt {name}.{attribute}") from None

    def _sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(match: re.Match) -> str:
            token = match.group(1)
            if token in extra:
                return str(self.resolve(extra[token]))
            if "." in token and not token.startswith("AWS::"):
                name, attribute = token.split(".", 1)
                return self.get_att(name, attribute)
            return self.ref(token)

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self._sub(text, extra)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in self.resolve(arg[1]))
        return {k: self.resolve(v) for k, v in value.items()}


# The local stack's own values for the parameters a deploy must name (the template gives them no default, and
# its patterns refuse these reserved example and local names, so none of them can reach a deploy).
LOCAL_PARAMETERS = {
    "JwtIssuer": "https://auth.local.example",
    "JwtAudience": "marketing-engine.local",
    "ShareBaseUrl": "https://example.com/s",
    "RewardSenderEmail": "rewards@example.com",
}


def parameter_defaults(template: dict, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The template's defaults, then the local values, then `overrides`."""
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    values.update({k: v for k, v in LOCAL_PARAMETERS.items() if k in values})
    values.update(overrides or {})
    return values


def merged_function_properties(template: dict, properties: dict) -> dict:
    """A function's properties with the template's `Globals.Function` applied, as SAM does
    (maps merge, with the function winning; lists such as Layers are concatenated)."""
    base = template.get("Globals", {}).get("Function", {})

    def merge(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            return {**a, **{k: merge(a.get(k), v) if k in a else v for k, v in b.items()}}
        if isinstance(a, list) and isinstance(b, list):
            return a + b
        return b

    return merge(base, properties)
