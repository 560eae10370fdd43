"""llmcore's Vulkan backend plugin: compute shaders (GLSL compiled to SPIR-V, shipped with the
package) on any Vulkan 1.1 device, from discrete GPUs to Mesa's lavapipe on the CPU."""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl

from llmcore_vulkan.backend import VulkanBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [VulkanBackend]


__all__ = ["VulkanBackend"]
