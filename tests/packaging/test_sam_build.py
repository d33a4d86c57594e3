"""`sam build` succeeds and its artifacts would import in Lambda (python3.13, arm64).

The layer must hold the package at `python/marketing` (not `python/python/...`), its compiled wheels must
be aarch64 (without `BuildArchitecture: arm64` SAM packs this machine's x86_64 wheels and every deployed
function fails to import), and each built function's handler must import with the built function folder and
the built layer's own package on the path. The third-party packages of the layer are aarch64 and cannot load
here, so host copies (this environment's site-packages) stand in for them in that import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from local_stack.functions import function_specs
from local_stack.provision import plan
from local_stack.template import ROOT, load
from tests.packaging.python313 import interpreter_dir

pytestmark = pytest.mark.packaging

ELF_MACHINE_AARCH64 = 0xB7


def sam_cli() -> str:
    candidate = os.environ.get("SAM_CLI") or str(ROOT / ".venv-sam" / "bin" / "sam")
    if not Path(candidate).exists():
        pytest.fail(f"SAM CLI not found at {candidate}: run `make test` (it installs SAM CLI in .venv-sam)")
    return candidate


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sam") / "build"
    env = {**os.environ, "PATH": f"{interpreter_dir()}{os.pathsep}{os.environ['PATH']}",
           "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run([sam_cli(), "build", "--template-file", str(ROOT / "template.yaml"),
                             "--build-dir", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def test_layer_holds_the_package_at_python_marketing(build_dir):
    layer = build_dir / "SharedLayer" / "python"
    assert (layer / "marketing" / "__init__.py").is_file()
    assert (layer / "marketing" / "core" / "http.py").is_file()
    assert not (layer / "python").exists(), "nested python/python: Lambda would not find the package"
    assert (layer / "aws_lambda_powertools").is_dir() and (layer / "pydantic").is_dir()


def test_compiled_wheels_in_the_layer_are_aarch64(build_dir):
    shared_objects = list((build_dir / "SharedLayer" / "python").rglob("*.so"))
    assert any("pydantic_core" in str(p) for p in shared_objects), "pydantic_core's extension is missing"
    wrong = [str(p) for p in shared_objects if elf_machine(p) != ELF_MACHINE_AARCH64]
    assert wrong == [], f"not built for arm64: {wrong[:5]}"


def test_every_module_of_the_layer_ships_bytecode_that_python313_uses_as_it_is(build_dir):
    site = build_dir / "SharedLayer" / "python"
    magic = bytes.fromhex(subprocess.run(
        [f"{interpreter_dir()}/python3.13", "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True, check=True).stdout.strip())
    sources = [p for p in site.rglob("*.py") if "__pycache__" not in p.parts]
    missing, checked = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(site)))
            continue
        header = pyc.read_bytes()[:8]
        assert header[:4] == magic, f"{pyc} was not compiled by python3.13"
        checked.append(int.from_bytes(header[4:8], "little"))
    assert len(sources) > 1000 and missing == [], missing[:10]
    # hash-based and unchecked (flags 0b01): used whatever the times the zip file keeps for the sources
    assert set(checked) == {0b01}


def test_the_layer_ships_a_boto3_and_the_botocore_it_was_released_with(build_dir):
    from packaging.requirements import Requirement

    site = build_dir / "SharedLayer" / "python"

    def version(name: str) -> str:
        (info,) = site.glob(f"{name}-*.dist-info")
        return next(line.split(": ", 1)[1] for line in (info / "METADATA").read_text().splitlines()
                    if line.startswith("Version: "))

    (boto3_info,) = site.glob("boto3-*.dist-info")
    wanted = next(Requirement(line.split(": ", 1)[1]) for line in (boto3_info / "METADATA").read_text().splitlines()
                  if line.startswith("Requires-Dist: botocore"))
    assert wanted.specifier.contains(version("botocore")), (version("boto3"), version("botocore"))


def test_every_built_handler_imports_with_the_built_layer(build_dir, tmp_path):
    template = load()
    specs = function_specs(template, plan(template, "pkg"), "pkg")
    # Only our own package from the built layer; host copies of the third-party packages after it.
    first_party = tmp_path / "layer-first-party"
    shutil.copytree(build_dir / "SharedLayer" / "python" / "marketing", first_party / "marketing")
    host_site = sysconfig.get_paths()["purelib"]
    for spec in specs:
        function_dir = build_dir / spec.logical_id
        module, attribute = spec.handler.rsplit(".", 1)
        probe = (
            "import sys, importlib, json; "
            f"sys.path[:0] = {json.dumps([str(function_dir), str(first_party)])}; sys.path.append({host_site!r}); "
            f"m = importlib.import_module({module!r}); import marketing; "
            f"assert callable(getattr(m, {attribute!r})); print(marketing.__file__)"
        )
        env = {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "POWERTOOLS_TRACE_DISABLED": "true", **spec.environment}
        result = subprocess.run([sys.executable, "-I", "-c", probe], env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, f"{spec.logical_id}: {result.stderr[-3000:]}"
        assert result.stdout.strip().startswith(str(first_party)), "marketing was not imported from the build"
