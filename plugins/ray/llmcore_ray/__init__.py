"""The ray backend plugin: each device is a node of a Ray cluster, where an actor loads its layer
range from the model file itself and runs it on that node's best backend (docs/ray.md)."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_ray.backend import RayBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [RayBackend]
