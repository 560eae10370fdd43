"""llmcore's SYCL backend plugin: the shared GPU kernels' OpenCL C rendering, run through pyopencl on
any OpenCL device (Intel GPUs through their compute runtime, PoCL's CPU device in CI)."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_sycl.backend import SyclBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [SyclBackend]


__all__ = ["SyclBackend"]
