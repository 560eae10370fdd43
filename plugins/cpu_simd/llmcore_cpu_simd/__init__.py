"""llmcore's cpu_simd backend plugin: the compute graph lowered to a flat C program and run by a
pthread pool, with AVX-512 / AVX2 / NEON / scalar kernels compiled on first use."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_cpu_simd.backend import CpuSimdBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [CpuSimdBackend]


__all__ = ["CpuSimdBackend"]
