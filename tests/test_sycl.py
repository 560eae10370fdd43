"""The SYCL backend on PoCL (OpenCL on the CPU): the shared GPU kernels' OpenCL rendering running
for real, alone and as an accelerator beside cpu_simd. On a CPU device it takes llama.cpp's CPU order everywhere it matters, so it gives
llama.cpp's logits bit for bit. The conformance kit's op cases run from tests/test_conformance.py,
the full goldens from tests/test_goldens.py (slow-marked: PoCL is several times slower than
cpu_simd)."""

from __future__ import annotations

import pytest

from conftest import rows_unlike_llama_cpp
from llmcore.engine.registry import availability, backend_classes, choose_backend

pytestmark = pytest.mark.skipif("sycl" not in backend_classes(), reason="the sycl plugin is not installed (plugins/sycl)")

GOLDEN = "capital"  # the shortest golden: 37 rows


@pytest.fixture(scope="module")
def usable() -> None:
    status = availability("sycl")
    if not status.usable:
        pytest.fail(f"sycl is installed but cannot run: {status.reason}")


def test_probe_lists_the_opencl_cpu_device_and_auto_passes_it_over(usable):
    devices = availability("sycl").devices
    assert devices and all(d.kind == "cpu" for d in devices)  # PoCL's pthread device
    assert any(f.startswith("opencl ") for f in devices[0].features)
    chosen, reason = choose_backend("auto")
    assert chosen.name != "sycl" and "sycl: only CPU-type devices" in reason


@pytest.mark.parametrize("ngl", [None, 15], ids=["alone", "ngl15"])
def test_one_golden_bit_for_bit(usable, default_model_path, ngl):
    from llmcore import LLM

    llm = LLM(default_model_path, backend="sycl", n_ctx=512, n_gpu_layers=ngl)
    on_sycl = [layer for layer, backend in llm.plan.placement.backends.items() if backend.name == "sycl"]
    assert len(on_sycl) == (ngl or 31)  # -ngl 15: blocks 16-29 and the output head; alone all 30 and it
    assert rows_unlike_llama_cpp(llm, GOLDEN) == []



def test_three_way_split_sycl_vulkan_cpu_simd_bit_for_bit(usable, default_model_path):
    """-ngl 16 puts blocks 15-29 and the output head on sycl, -ot pins the matrices of block 29
    to vulkan (lavapipe), cpu_simd runs the rest: all three exact, so llama.cpp's logits still."""
    from llmcore import LLM

    if not availability("vulkan").usable:
        pytest.fail(f"vulkan cannot run: {availability('vulkan').reason}")
    llm = LLM(default_model_path, backend="sycl", n_ctx=512, n_gpu_layers=16, override_tensor=[r"blk\.29\.=vulkan"])
    assert {split.backend.name for split in llm.plan.splits(1)} == {"cpu_simd", "sycl", "vulkan"}
    assert rows_unlike_llama_cpp(llm, GOLDEN) == []
