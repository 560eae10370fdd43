"""The architecture is a test: the import-linter contracts in pyproject.toml ([tool.importlinter])
hold, each on its own, and a deliberately wrong import breaks them.

`lint-imports` runs in a subprocess so that it can be pointed at a copy of the package; the template
plugin is not installed by the README's test line, so its folder goes on PYTHONPATH."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llmcore

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = [ROOT / "plugins" / name for name in ("cpu_simd", "vulkan", "template", "gpu_kernels", "sycl", "cuda", "hip",
                                                      "metal", "ray")]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in CONFIG["contracts"]}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` run in ``cwd``, whose ``llmcore/`` and ``pyproject.toml`` it checks."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(cwd), *map(str, PLUGIN_DIRS)]), COLUMNS="300")
    command = [str(LINT_IMPORTS), "--no-cache", "--no-logo", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_contract_is_kept(contract: str) -> None:
    result = lint_imports(ROOT, "--contract", contract)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_no_import_cycles_is_checked_everywhere() -> None:
    """The no-cycles contract looks at llmcore's subpackages and, below them, at every package's
    modules, in llmcore and in each plugin."""
    contract = CONTRACTS["no-cycles"]
    assert contract["type"] == "acyclic_siblings"
    assert set(contract["ancestors"]) == set(CONFIG["root_packages"])
    assert "depth" not in contract and "skip_descendants" not in contract  # default: 10 levels down


def test_every_subpackage_has_a_layer_and_a_place_in_the_backend_rule() -> None:
    """A new subpackage of llmcore must be placed in the layers (the layers contract is exhaustive)
    and, unless it is the plugin API or the reference backend itself, be forbidden to backends: that
    list cannot go stale."""
    children = {info.name for info in pkgutil.iter_modules(llmcore.__path__)}
    layers = CONTRACTS["layers"]
    assert layers["exhaustive"] and layers["containers"] == ["llmcore"]
    placed = {name.strip("() ") for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    assert placed == children
    forbidden = set(CONTRACTS["backends-use-plugin-api"]["forbidden_modules"])
    assert forbidden == {f"llmcore.{name}" for name in children - {"plugin_api", "backends"}}


def test_a_wrong_import_breaks_the_contracts(tmp_path: Path) -> None:
    """Copy the package, add shortcuts the architecture forbids, and see the linter name each one."""
    shutil.copytree(ROOT / "llmcore", tmp_path / "llmcore", ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    def add_import(module: str, line: str) -> int:
        path = tmp_path / (module.replace(".", "/") + ".py")
        text = path.read_text()
        path.write_text(text + f"\n{line}\n")
        return text.count("\n") + 2  # the line number of the added import

    graph_line = add_import("llmcore.graph.ir", "from llmcore.cli import main")
    backend_line = add_import("llmcore.backends.reference.kernels", "from llmcore.engine import registry")
    root_line = add_import("llmcore.backends.reference.__init__", "import llmcore")

    result = lint_imports(tmp_path)
    out = result.stdout
    assert result.returncode != 0, out
    # the graph reaching up to the command line: a layer violation, and a loop between subpackages
    assert "llmcore.graph is not allowed to import llmcore.cli" in out, out
    assert f"llmcore.graph.ir -> llmcore.cli (l.{graph_line})" in out, out
    assert "No cycles are allowed in llmcore.\n" in out, out
    # a backend reaching past the plugin API
    assert "llmcore.backends is not allowed to import llmcore.engine" in out, out
    assert f"llmcore.backends.reference.kernels -> llmcore.engine.registry (l.{backend_line})" in out, out
    assert f"llmcore.backends.reference -> llmcore (l.{root_line})" in out, out
    for contract in ("layers", "no-cycles", "backends-use-plugin-api", "backends-not-llmcore-root"):
        assert f"{CONTRACTS[contract]['name']} BROKEN" in out, out
