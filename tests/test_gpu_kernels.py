"""The GPU kernels' one source (plugins/gpu_kernels) rendered for every dialect, and each rendering
checked as far as this machine allows without a GPU: the CUDA one compiled by NVRTC to machine code
for four architectures (no compile error, no register spill), the HIP one compiled by clang for
AMD GPUs (device code, without ROCm's headers and libraries), the Metal one parsed and type-checked
by clang against a stand-in for <metal_stdlib> (Metal itself has not run). The OpenCL rendering
runs for real: tests/test_sycl.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmcore.errors import BackendError
from llmcore_gpu_kernels import nvrtc as nvrtc_module
from llmcore_gpu_kernels.render import DIALECTS, kernel_source, render, signatures

FIXTURES = Path(__file__).parent / "fixtures"
#: how each dialect's prelude spells a kernel (Metal's signatures are rewritten instead)
KERNEL_WORD = {"cuda": 'extern "C" __global__', "hip": 'extern "C" __global__', "opencl": "__kernel"}

def clang() -> str:
    found = shutil.which("clang++") or shutil.which("clang++-15")
    if found is None:
        pytest.skip("clang++ not found (Debian's clang-15 comes with pocl-opencl-icd: scripts/install-test-deps.sh)")
    return found


def test_every_kernel_is_rendered_to_every_dialect():
    kernels = signatures()
    # the templates are instantiated: a kernel per weight type and cache type, no placeholder left
    assert {"mul_mat_q4_1", "mul_mat_q6_k", "get_rows_bf16", "attention_f16", "kv_store_f32"} <= set(kernels)
    assert "{T}" not in kernel_source()
    for dialect in DIALECTS:
        rendering = render(dialect)
        assert rendering.kernels == kernels
        for name, sig in kernels.items():
            if dialect == "metal":
                match = re.search(rf"^kernel void {name}\((.*)\) \{{$", rendering.source, re.MULTILINE)
                assert match, name
                assert match[1].count("[[buffer(") == len(sig.params) and "[[threadgroup_position_in_grid]]" in match[1]
            else:
                assert re.search(rf"^KERNEL void {name}\(", rendering.source, re.MULTILINE), (dialect, name)
        if dialect != "metal":
            assert f"#define KERNEL {KERNEL_WORD[dialect]}\n" in rendering.source

def test_cuda_rendering_compiles_with_nvrtc_for_four_architectures_without_spills():
    try:
        nvrtc = nvrtc_module.load_nvrtc()
    except BackendError as error:
        pytest.skip(str(error))
    with ThreadPoolExecutor(2) as pool:  # NVRTC runs outside the GIL
        reports = dict(zip(nvrtc_module.ARCHITECTURES, pool.map(lambda arch: nvrtc_module.compile_kernels(arch, nvrtc),
                                                                  nvrtc_module.ARCHITECTURES)))
    for arch, kernels in reports.items():
        assert {k.name for k in kernels} == set(signatures()), arch
        # the stated limit: no kernel spills registers (private arrays in local memory are stack, not spills)
        spilling = [(k.name, k.spill_store_bytes) for k in kernels if k.spill_store_bytes or k.spill_load_bytes]
        assert not spilling, f"{arch}: {spilling}"
        assert max(k.registers for k in kernels) <= 255


@pytest.mark.parametrize("arch", ["gfx90a", "gfx1100"])
def test_hip_rendering_compiles_for_amd_gpus(tmp_path, arch):
    source = tmp_path / "kernels.hip"
    source.write_text(render("hip").source)
    result = subprocess.run(
        [clang(), "-x", "hip", f"--offload-arch={arch}", "--cuda-device-only", "-nogpulib", "-nogpuinc", "-std=c++17",
         "-O2", "-S", "-include", str(FIXTURES / "hip_shim.h"), str(source), "-o", str(tmp_path / "kernels.s")],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(re.findall(r"\.amdhsa_kernel (\w+)", (tmp_path / "kernels.s").read_text())) == set(signatures())

def test_metal_rendering_parses_and_type_checks(tmp_path):
    source = tmp_path / "kernels.metal"
    source.write_text(render("metal").source)
    result = subprocess.run([clang(), "-fsyntax-only", "-x", "c++", "-std=c++17", "-Wno-unknown-attributes",
                             "-I", str(FIXTURES / "msl_shim"), str(source)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def test_gpu_plugins_say_exactly_why_they_cannot_run_here():
    """cuda, hip and metal install without their hardware (CI has none) and their probes name the
    missing piece. They are loaded from their folders, as CI does not install them."""
    plugins = Path(__file__).resolve().parents[1] / "plugins"
    script = ("from llmcore_cuda.backend import CudaBackend\nfrom llmcore_hip.backend import HipBackend\n"
              "from llmcore_metal.backend import MetalBackend\n"
              "for cls in (CudaBackend, HipBackend, MetalBackend):\n    status = cls.probe()\n"
              "    print(cls.name, status.usable, status.reason, sep='|')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(plugins / name) for name in ("cuda", "hip", "metal"))}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True)
    status = {name: (usable, reason) for name, usable, reason in (line.split("|") for line in result.stdout.splitlines())}
    assert status["metal"] == ("False", "no Metal device: macOS only")
    assert status["cuda"][0] == "False" and status["cuda"][1].startswith(("no CUDA driver: libcuda.so.1 not found",
                                                                          "cupy not installed: pip install cupy-cuda1",
                                                                          "no CUDA device"))
    assert status["hip"][0] == "False" and status["hip"][1].startswith(("no ROCm runtime: libamdhip64.so not found",
                                                                        "cupy not installed", "no HIP device"))
