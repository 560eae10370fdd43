"""llmcore's HIP backend plugin: the shared GPU kernels' HIP rendering, compiled at run time by
hiprtc through the ROCm build of CuPy."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_hip.backend import HipBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [HipBackend]


__all__ = ["HipBackend"]
