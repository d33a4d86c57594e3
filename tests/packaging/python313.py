"""Finds a Python 3.13 interpreter for `sam build` (a python3.13 runtime builds with python3.13 on PATH).

`python -m tests.packaging.python313` prints the folder to put first on PATH."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

RUNTIME = "python3.13"


def _works(executable: str) -> bool:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.startswith("Python 3.13")


def interpreter_dir() -> str:
    """The folder of a working python3.13: on PATH, or one of pyenv's versions (whose shim only runs it when
    that version is selected)."""
    found = shutil.which(RUNTIME)
    if found and _works(found) and "shims" not in found:
        return os.path.dirname(found)
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in sorted(glob.glob(f"{root}/versions/3.13*/bin/{RUNTIME}"), reverse=True):
        if _works(candidate):
            return os.path.dirname(candidate)
    if found and _works(found):
        return os.path.dirname(found)
    raise SystemExit(f"no working {RUNTIME} found: install Python 3.13 (pyenv install 3.13) for `sam build`")


if __name__ == "__main__":
    print(interpreter_dir())
