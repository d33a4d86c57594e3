"""The audience rule language: a small JSON tree evaluated over a user's attributes, never `eval`.

    {"all": [rule, ...]}   every rule holds         {"any": [rule, ...]}   at least one holds
    {"not": rule}          the rule does not hold   {"attr": "level", "op": "gte", "value": 3}

Operators: eq, ne, in, not_in, contains (a list attribute holds the value), gt, gte, lt, lte, exists.
A comparison with a missing attribute, or between values of different kinds, is false (never an error), so
one user's odd data cannot break an event for everyone. Trees are bounded in depth and size.
"""

from __future__ import annotations

import json
import operator
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

MAX_DEPTH = 5
MAX_NODES = 50

AttrName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
Scalar = str | int | float | bool
Operator = Literal["eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "exists"]

_ORDER = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attr: AttrName
    op: Operator
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a list value")
        if self.op in _ORDER and (isinstance(self.value, (list, bool)) or self.value is None):
            raise ValueError(f"'{self.op}' needs a number or a string value")
        if self.op in ("eq", "ne", "contains") and (self.value is None or isinstance(self.value, list)):
            raise ValueError(f"'{self.op}' needs a single value")
        return self


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: Annotated[list[Rule], Field(min_length=1, max_length=20)]


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    any: Annotated[list[Rule], Field(min_length=1, max_length=20)]


class Not(BaseModel):
    not_: Rule = Field(alias="not")
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


Rule = Condition | AllOf | AnyOf | Not

for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()

_RULE = TypeAdapter(Rule)


@lru_cache(maxsize=256)
def parse(rule_json: str) -> Rule:
    """A stored rule, parsed once per container. Keyed by the JSON text itself, so an updated audience (new
    text) is parsed afresh and a stale rule is never served. The result is shared: never mutate it."""
    return _RULE.validate_python(json.loads(rule_json))


def _children(rule: Rule) -> list[Rule]:
    if isinstance(rule, AllOf):
        return rule.all
    if isinstance(rule, AnyOf):
        return rule.any
    if isinstance(rule, Not):
        return [rule.not_]
    return []


def check_size(rule: Rule) -> None:
    """Refuse trees deeper than MAX_DEPTH or larger than MAX_NODES: evaluation cost stays bounded."""
    nodes, stack = 0, [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"the rule is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in _children(node))
    if nodes > MAX_NODES:
        raise ValueError(f"the rule has more than {MAX_NODES} nodes")


def _lookup(attributes: dict[str, Any], path: str) -> tuple[bool, Any]:
    """`a.b` reads nested objects; (found, value)."""
    value: Any = attributes
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (isinstance(a, str) and isinstance(b, str))


def _holds(cond: Condition, attributes: dict[str, Any]) -> bool:
    found, actual = _lookup(attributes, cond.attr)
    if cond.op == "exists":
        return found if cond.value is None else found == bool(cond.value)
    if not found:
        return cond.op in ("ne", "not_in")
    if cond.op == "eq":
        return _comparable(actual, cond.value) and actual == cond.value
    if cond.op == "ne":
        return not (_comparable(actual, cond.value) and actual == cond.value)
    if cond.op == "in":
        return any(_comparable(actual, v) and actual == v for v in cond.value)
    if cond.op == "not_in":
        return not any(_comparable(actual, v) and actual == v for v in cond.value)
    if cond.op == "contains":
        return isinstance(actual, list) and any(_comparable(v, cond.value) and v == cond.value for v in actual)
    return _comparable(actual, cond.value) and _ORDER[cond.op](actual, cond.value)


def matches(rule: Rule, attributes: dict[str, Any]) -> bool:
    if isinstance(rule, AllOf):
        return all(matches(r, attributes) for r in rule.all)
    if isinstance(rule, AnyOf):
        return any(matches(r, attributes) for r in rule.any)
    if isinstance(rule, Not):
        return not matches(rule.not_, attributes)
    return _holds(rule, attributes)
