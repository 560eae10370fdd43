"""llmcore's Metal backend plugin: the shared GPU kernels' Metal Shading Language rendering,
compiled by the Metal framework through pyobjc. Written without a Mac: it has not run yet."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_metal.backend import MetalBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [MetalBackend]


__all__ = ["MetalBackend"]
