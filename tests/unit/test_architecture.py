"""The layout rules the README states, checked on the source: handlers never touch boto3, and only the
data-access modules reach DynamoDB."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "marketing"
DATA_ACCESS = {"dal.py", "journal.py"}


def imported(path: Path) -> set[str]:
    """Every module `path` imports, with `from a import b` also as `a.b`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_handlers_do_not_use_boto3():
    handlers = sorted((ROOT / "functions").glob("*/app.py"))
    assert len(handlers) >= 15
    offenders = [h.parent.name for h in handlers if any(n.split(".")[0] in ("boto3", "botocore") for n in imported(h))]
    assert offenders == []


def test_only_data_access_modules_reach_dynamodb():
    reaching = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                if path.parent.name != "core" and "marketing.core.dynamo" in imported(path)}
    assert reaching and {Path(p).name for p in reaching} <= DATA_ACCESS, reaching
