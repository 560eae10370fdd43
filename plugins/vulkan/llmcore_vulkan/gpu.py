"""A logical device on one physical device: its compute queue, one command pool and one fence,
and the memory types the backend allocates from."""

from __future__ import annotations

import os
from typing import Any

from llmcore_vulkan.device import PhysicalDevice, vulkan_api

#: set to 1 to keep device buffers unmapped even where the device could map them, so that every
#: upload and download goes through staging buffers as on a discrete GPU (used by the tests)
STAGING_ENV = "LLMCORE_VULKAN_STAGING"
_NO_TIMEOUT = 0xFFFFFFFFFFFFFFFF


class Gpu:
    """The logical device the backend records and submits command buffers to."""

    def __init__(self, physical: PhysicalDevice) -> None:
        vk = self.vk = vulkan_api()
        self.physical = physical
        queue_info = vk.VkDeviceQueueCreateInfo(queueFamilyIndex=physical.compute_queue_family, queueCount=1,
                                                pQueuePriorities=[1.0])
        # double sums in the norms, as ggml's CPU code and the reference backend take them
        features = vk.VkPhysicalDeviceFeatures(shaderFloat64=vk.VK_TRUE if physical.fp64 else vk.VK_FALSE)
        self.device = vk.vkCreateDevice(physical.handle, vk.VkDeviceCreateInfo(
            queueCreateInfoCount=1, pQueueCreateInfos=[queue_info], pEnabledFeatures=features), None)
        self.queue = vk.vkGetDeviceQueue(self.device, physical.compute_queue_family, 0)
        self.command_pool = vk.vkCreateCommandPool(self.device, vk.VkCommandPoolCreateInfo(
            flags=vk.VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
            queueFamilyIndex=physical.compute_queue_family), None)
        self.fence = vk.vkCreateFence(self.device, vk.VkFenceCreateInfo(), None)
        self._memory = vk.vkGetPhysicalDeviceMemoryProperties(physical.handle)
        self.force_staging = os.environ.get(STAGING_ENV, "0") not in ("", "0")
        self.alignment = max(256, physical.min_storage_offset_alignment)

    def memory_type(self, type_bits: int, host_visible: bool) -> tuple[int, bool]:
        """(memory type index, whether it is host-visible) for a buffer that may use ``type_bits``:
        device-local memory for device buffers, host-visible coherent memory (device-local too
        where the device has such, as UMA devices and resizable BAR do) for host buffers."""
        vk = self.vk
        visible = vk.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | vk.VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
        local = vk.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT
        wanted = [visible | local, visible] if host_visible else [local, 0]
        for flags in wanted:
            for i in range(self._memory.memoryTypeCount):
                props = self._memory.memoryTypes[i].propertyFlags
                if type_bits & (1 << i) and props & flags == flags:
                    return i, props & visible == visible
        raise MemoryError(f"no Vulkan memory type with flags 0x{wanted[-1]:x} for type bits 0x{type_bits:x}")

    def command_buffer(self) -> Any:
        vk = self.vk
        return vk.vkAllocateCommandBuffers(self.device, vk.VkCommandBufferAllocateInfo(
            commandPool=self.command_pool, level=vk.VK_COMMAND_BUFFER_LEVEL_PRIMARY, commandBufferCount=1))[0]

    def submit_and_wait(self, command_buffer: Any) -> None:
        """Submit one recorded command buffer and wait for it: the one submit of a step."""
        vk = self.vk
        vk.vkQueueSubmit(self.queue, 1, [vk.VkSubmitInfo(commandBufferCount=1, pCommandBuffers=[command_buffer])],
                         self.fence)
        vk.vkWaitForFences(self.device, 1, [self.fence], vk.VK_TRUE, _NO_TIMEOUT)
        vk.vkResetFences(self.device, 1, [self.fence])

    def run_once(self, record: Any) -> None:
        """Record commands with ``record(command_buffer)``, run them and wait (uploads, downloads)."""
        vk = self.vk
        cmd = self.command_buffer()
        vk.vkBeginCommandBuffer(cmd, vk.VkCommandBufferBeginInfo(flags=vk.VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT))
        record(cmd)
        vk.vkEndCommandBuffer(cmd)
        self.submit_and_wait(cmd)
        vk.vkFreeCommandBuffers(self.device, self.command_pool, 1, [cmd])

    def wait_idle(self) -> None:
        self.vk.vkDeviceWaitIdle(self.device)
