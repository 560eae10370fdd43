"""The conformance kit run the way a plugin author runs it, ``pytest --llmcore-backend NAME`` in a
fresh process: it passes on the reference backend, on the template plugin for exactly what the
template claims, and on the installed plugins; it fails, naming the op and the error, on a
deliberately broken copy of the template.

Plugins under test are installed the way pip installs them, as a ``*.dist-info`` with an
``entry_points.txt`` on the path, but in a temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from llmcore.engine.registry import availability, backend_classes
from llmcore.conformance.cases import op_cases

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "plugins" / "template"
GOLDENS = Path(__file__).parent / "fixtures" / "golden" / "smollm2-135m-instruct-q4_1"


def install_plugin(site: Path, entry_name: str, module: str) -> None:
    """Make ``module`` (importable from ``site`` or PYTHONPATH) a backend plugin named ``entry_name``,
    as ``pip install`` of a distribution ``llmcore-<entry_name>`` would."""
    dist_info = site / f"llmcore_{entry_name}-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: llmcore-{entry_name}\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[llmcore.backends]\n{entry_name} = {module}\n")


def run_python(args: list[str], cwd: Path, path: Sequence[Path] = ()) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process with ``path`` in front of its import path."""
    entries = [str(p) for p in path] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(entries))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def run_kit(tmp_path: Path, *args: str, path: Sequence[Path] = ()) -> subprocess.CompletedProcess:
    """``pytest --llmcore-backend ...`` in a scratch directory (-p loads the kit whether or not
    llmcore's pytest11 entry point is installed)."""
    return run_python(["-m", "pytest", "-p", "llmcore.conformance.plugin", "-p", "no:cacheprovider", *args],
                      tmp_path, path)


def outcome_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    summary = result.stdout.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|error)", summary)}


@pytest.fixture
def template_site(tmp_path: Path) -> list[Path]:
    site = tmp_path / "site"
    install_plugin(site, "template", "llmcore_template")
    return [site, TEMPLATE]


def test_reference_passes_every_op_case(tmp_path):
    result = run_kit(tmp_path, "--llmcore-backend", "reference", "-k", "not golden")
    assert result.returncode == 0, result.stdout[-3000:]
    assert outcome_counts(result)["passed"] == len(op_cases())
    assert f"claims {len(op_cases())} of {len(op_cases())} op cases" in result.stdout


def test_template_passes_what_it_claims_and_claims_only_that(tmp_path, template_site):
    result = run_kit(tmp_path, "--llmcore-backend", "template", "-k", "not golden", "-v", path=template_site)
    assert result.returncode == 0, result.stdout[-3000:]
    ran = set(re.findall(r"test_op_matches_reference\[template-([\w.-]+)\] PASSED", result.stdout))
    claimed_ops = {case_id.split("-")[0] for case_id in ran}
    assert claimed_ops == {"mul_mat", "add", "mul", "scale", "rms_norm", "silu", "gelu", "swiglu", "geglu", "reshape"}
    assert {case_id.split("-")[1] for case_id in ran if case_id.startswith("mul_mat")} == {"F32", "F16", "Q8_0"}
    # the rest is named as left to the scheduler's fallback
    assert re.search(r"left to the scheduler's fallback: .*rope \(all\).*attention \(all\)", result.stdout)
    assert "mul_mat BF16 Q2_K" in result.stdout


@pytest.mark.parametrize("name", ["cpu_simd", "vulkan", "sycl"])
def test_installed_plugin_passes_every_op_case_it_claims(tmp_path, name):
    if name not in backend_classes():
        pytest.skip(f"the {name} plugin is not installed")
    if not availability(name).usable:
        pytest.skip(f"{name} cannot run here: {availability(name).reason}")
    result = run_kit(tmp_path, "--llmcore-backend", name, "-k", "not golden", "-v")  # -v: a crash shows its case
    # a crash's faulthandler report lists the innermost frames first: the head of stderr names them
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[:6000]


# The broken copies: one wrong constant or sign in a kernel the template claims, and the op the
# kit must name in its failure.
BUGS = [
    pytest.param("np.float32(eps)", "np.float32(eps + 1)", "rms_norm", id="rms_norm-eps-off-by-one"),
    pytest.param("x / (np.float32(1) + np.exp(-x))", "x / (np.float32(1) + np.exp(x))", "silu", id="silu-sign-flip"),
]


@pytest.mark.parametrize(("correct", "broken", "op"), BUGS)
def test_kit_fails_a_broken_copy_of_the_template_naming_the_op(tmp_path, correct, broken, op):
    site = tmp_path / "site"
    package = site / "llmcore_broken"
    shutil.copytree(TEMPLATE / "llmcore_template", package, ignore=shutil.ignore_patterns("__pycache__"))
    for source in package.glob("*.py"):
        text = source.read_text().replace("llmcore_template", "llmcore_broken").replace('name = "template"', 'name = "broken"')
        source.write_text(text)
    kernels = package / "kernels.py"
    assert kernels.read_text().count(correct) == 1, "the template's kernel changed: update the bug"
    kernels.write_text(kernels.read_text().replace(correct, broken))
    install_plugin(site, "broken", "llmcore_broken")

    result = run_kit(tmp_path, "--llmcore-backend", "broken", "-k", "not golden", path=[site])

    assert result.returncode == 1, result.stdout[-3000:]
    failed = re.findall(r"^FAILED \S*test_op_matches_reference\[broken-(\w+)-", result.stdout, re.MULTILINE)
    assert failed and set(failed) <= {op, "swiglu"}, failed  # swiglu is silu(gate) * up
    report = re.search(rf"^broken: {op} x=f32\[.*\n  output: NMSE (\S+) exceeds the bound (\S+); "
                       rf"worst element \[\d+, \d+\]: got \S+, reference \S+ \(\|error\| \S+\)$", result.stdout, re.MULTILINE)
    assert report, result.stdout[-3000:]
    assert float(report[1]) > 1e3 * float(report[2])


def test_a_backend_not_installed_is_refused_with_the_reason(tmp_path):
    result = run_kit(tmp_path, "--llmcore-backend", "cuda")
    assert result.returncode == 4  # pytest's usage error
    assert "--llmcore-backend cuda" in result.stderr
    assert "install it with: " in result.stderr and "-e plugins/gpu_kernels -e plugins/cuda" in result.stderr


def test_goldens_are_skipped_with_the_reason_when_absent(tmp_path):
    result = run_kit(tmp_path, "--llmcore-backend", "reference", "-k", "golden", "-rs",
                     "--llmcore-goldens", str(tmp_path / "nowhere"))
    assert result.returncode == 0
    assert outcome_counts(result)["skipped"] >= 2
    assert f"--llmcore-goldens {tmp_path / 'nowhere'}: no <name>.json goldens there" in result.stdout


def _one_golden(tmp_path: Path, name: str = "capital") -> Path:
    directory = tmp_path / "goldens"
    directory.mkdir()
    for suffix in (".json", ".topk.npz"):
        shutil.copy(GOLDENS / f"{name}{suffix}", directory)
    return directory


def test_goldens_run_end_to_end_on_a_fast_backend(tmp_path, default_model_path):
    if "cpu_simd" not in backend_classes() or not availability("cpu_simd").usable:
        pytest.skip("needs the cpu_simd plugin to run the model fast (the full runs are marked slow)")
    result = run_kit(tmp_path, "--llmcore-backend", "cpu_simd", "-k", "golden", "-s",
                     "--llmcore-goldens", str(_one_golden(tmp_path)), "--llmcore-model", str(default_model_path))
    assert re.search(r"cpu_simd on 1 goldens \(37 rows\): top-1 agreement", result.stdout), result.stdout[-3000:]
    assert result.returncode == 0, result.stdout[-3000:]
    assert outcome_counts(result)["passed"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reference", "template"])
def test_goldens_pass_end_to_end_on_the_numpy_backends(tmp_path, template_site, default_model_path, name):
    result = run_kit(tmp_path, "--llmcore-backend", name, "-k", "golden", "--llmcore-model", str(default_model_path),
                     path=template_site)
    assert result.returncode == 0, result.stdout[-3000:]
