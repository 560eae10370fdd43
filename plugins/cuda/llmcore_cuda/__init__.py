"""llmcore's CUDA backend plugin: the shared GPU kernels' CUDA rendering, compiled at run time by
NVRTC through CuPy's RawModule."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_cuda.backend import CudaBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [CudaBackend]


__all__ = ["CudaBackend"]
