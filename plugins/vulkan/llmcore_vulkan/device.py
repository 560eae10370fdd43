"""The Vulkan instance, the physical devices it sees, and the logical device a backend runs on.

Everything here goes through the ``vulkan`` package (cffi bindings to the system's
``libvulkan.so.1`` loader). The loader and the instance are opened once per process, when a
backend is probed or created, never when the plugin is discovered.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from llmcore.plugin_api import BackendError, Device

#: environment variable choosing the physical device by its index in ``llmcore backends``
DEVICE_ENV = "LLMCORE_VULKAN_DEVICE"

#: ggml's device type names for VkPhysicalDeviceType (other, integrated, discrete, virtual, cpu)
_KINDS = {0: "accel", 1: "igpu", 2: "gpu", 3: "gpu", 4: "cpu"}
#: default choice among several devices: discrete first, CPU (lavapipe, SwiftShader) last
_PREFERENCE = {2: 0, 1: 1, 3: 2, 0: 3, 4: 4}


class VulkanUnavailable(BackendError):
    """Vulkan cannot run here; the message says why (no loader, no driver, no device)."""


def vulkan_api() -> ModuleType:
    """The ``vulkan`` module, or :class:`VulkanUnavailable` naming what is missing."""
    try:
        import vulkan
    except ImportError:
        raise VulkanUnavailable("the 'vulkan' Python package is not installed (pip install vulkan)") from None
    except OSError:
        raise VulkanUnavailable("the Vulkan loader libvulkan.so.1 was not found "
                                "(install libvulkan1, or the Vulkan SDK)") from None
    return vulkan


@dataclass(frozen=True)
class PhysicalDevice:
    """What a physical device offers the backend, read once from the driver."""

    index: int
    handle: Any
    name: str
    type: int  # VkPhysicalDeviceType
    api_version: str
    driver: str
    heaps: tuple[tuple[int, bool], ...]  # (bytes, device-local) per memory heap
    fp16: bool
    int8: bool
    fp64: bool
    subgroup_size: int
    compute_queue_family: int | None
    max_storage_buffer_range: int
    min_storage_offset_alignment: int

    @property
    def kind(self) -> str:
        return _KINDS.get(self.type, "accel")

    def describe(self) -> Device:
        local = sum(size for size, device_local in self.heaps if device_local)
        heaps = " + ".join(f"{size / 2**30:.1f} GiB{' local' if dl else ''}" for size, dl in self.heaps)
        features = [f"vulkan {self.api_version}", self.driver, f"heaps {heaps}",
                    f"subgroup {self.subgroup_size}"]
        features += [name for name, present in (("fp16", self.fp16), ("int8", self.int8), ("fp64", self.fp64))
                     if present]
        return Device(f"{self.name} (vulkan{self.index})", self.kind, memory_total=local, features=tuple(features))


@functools.cache
def instance() -> Any:
    """The process's VkInstance (created on first use)."""
    vk = vulkan_api()
    app = vk.VkApplicationInfo(pApplicationName="llmcore", applicationVersion=1, pEngineName="llmcore",
                               engineVersion=1, apiVersion=vk.VK_MAKE_VERSION(1, 1, 0))
    try:
        return vk.vkCreateInstance(vk.VkInstanceCreateInfo(pApplicationInfo=app), None)
    except vk.VkErrorIncompatibleDriver:
        raise VulkanUnavailable("no Vulkan driver (ICD) is installed: install your GPU's Vulkan driver, "
                                "or mesa-vulkan-drivers for lavapipe on the CPU") from None
    except vk.VkError as error:
        raise VulkanUnavailable(f"vkCreateInstance failed: {type(error).__name__}") from None


@functools.cache
def physical_devices() -> tuple[PhysicalDevice, ...]:
    """Every physical device of the instance, in the driver's order."""
    vk = vulkan_api()
    return tuple(_read_device(vk, i, handle) for i, handle in enumerate(vk.vkEnumeratePhysicalDevices(instance())))


def _read_device(vk: ModuleType, index: int, handle: Any) -> PhysicalDevice:
    props = vk.vkGetPhysicalDeviceProperties(handle)
    driver = vk.VkPhysicalDeviceDriverProperties()
    subgroup = vk.VkPhysicalDeviceSubgroupProperties(pNext=driver)
    vk.vkGetPhysicalDeviceProperties2(handle, vk.VkPhysicalDeviceProperties2(pNext=subgroup))
    f16_int8 = vk.VkPhysicalDeviceShaderFloat16Int8Features()
    vk.vkGetPhysicalDeviceFeatures2(handle, vk.VkPhysicalDeviceFeatures2(pNext=f16_int8))
    memory = vk.vkGetPhysicalDeviceMemoryProperties(handle)
    heaps = tuple((int(memory.memoryHeaps[i].size), bool(memory.memoryHeaps[i].flags & vk.VK_MEMORY_HEAP_DEVICE_LOCAL_BIT))
                  for i in range(memory.memoryHeapCount))
    families = vk.vkGetPhysicalDeviceQueueFamilyProperties(handle)
    compute = next((i for i, f in enumerate(families) if f.queueFlags & vk.VK_QUEUE_COMPUTE_BIT), None)
    version = props.apiVersion
    return PhysicalDevice(
        index=index,
        handle=handle,
        name=props.deviceName,
        type=int(props.deviceType),
        api_version=f"{version >> 22}.{(version >> 12) & 0x3FF}.{version & 0xFFF}",
        driver=f"{vk.ffi.string(driver.driverName).decode()} {vk.ffi.string(driver.driverInfo).decode()}".strip(),
        heaps=heaps,
        fp16=bool(f16_int8.shaderFloat16),
        fp64=bool(vk.vkGetPhysicalDeviceFeatures(handle).shaderFloat64),
        int8=bool(f16_int8.shaderInt8),
        subgroup_size=int(subgroup.subgroupSize),
        compute_queue_family=compute,
        max_storage_buffer_range=int(props.limits.maxStorageBufferRange),
        min_storage_offset_alignment=int(props.limits.minStorageBufferOffsetAlignment),
    )


def listed_devices() -> list[PhysicalDevice]:
    """The devices with a compute queue in the order the probe lists them (``llmcore backends``,
    ``--main-gpu``, ``--tensor-split``): the selected one first, then the others by index."""
    chosen = selected_device()
    return [chosen, *(d for d in physical_devices() if d is not chosen and d.compute_queue_family is not None)]


def selected_device() -> PhysicalDevice:
    """The device to run on: ``$LLMCORE_VULKAN_DEVICE`` if set, else the most capable kind
    (discrete, integrated, virtual, then CPU devices such as lavapipe)."""
    devices = [d for d in physical_devices() if d.compute_queue_family is not None]
    if not devices:
        raise VulkanUnavailable("the Vulkan driver reports no device with a compute queue")
    wanted = os.environ.get(DEVICE_ENV)
    if wanted is not None:
        chosen = [d for d in devices if str(d.index) == wanted.strip()]
        if not chosen:
            listed = ", ".join(f"{d.index}: {d.name}" for d in devices)
            raise VulkanUnavailable(f"${DEVICE_ENV}={wanted} names no Vulkan device (devices: {listed})")
        return chosen[0]
    return min(devices, key=lambda d: (_PREFERENCE.get(d.type, 5), d.index))
