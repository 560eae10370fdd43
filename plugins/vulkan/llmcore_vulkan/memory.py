"""Device memory: a few large VkDeviceMemory blocks, each with one VkBuffer over all of it, that
tensors sub-allocate from (drivers limit the number of allocations, lavapipe to 4096), and the
staging copies that move data in and out of blocks the host cannot map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from llmcore_vulkan.gpu import Gpu

_STAGING_CHUNK = 64 << 20


class MemoryBlock:
    """One VkDeviceMemory and a storage buffer over all of it, mapped when the host can see it."""

    def __init__(self, gpu: Gpu, size: int, host_visible: bool) -> None:
        vk = gpu.vk
        self.gpu = gpu
        self.size = size
        usage = (vk.VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | vk.VK_BUFFER_USAGE_TRANSFER_SRC_BIT
                 | vk.VK_BUFFER_USAGE_TRANSFER_DST_BIT)
        self.buffer = vk.vkCreateBuffer(gpu.device, vk.VkBufferCreateInfo(
            size=size, usage=usage, sharingMode=vk.VK_SHARING_MODE_EXCLUSIVE), None)
        needs = vk.vkGetBufferMemoryRequirements(gpu.device, self.buffer)
        type_index, mappable = gpu.memory_type(needs.memoryTypeBits, host_visible)
        self.memory = vk.vkAllocateMemory(gpu.device, vk.VkMemoryAllocateInfo(
            allocationSize=needs.size, memoryTypeIndex=type_index), None)
        vk.vkBindBufferMemory(gpu.device, self.buffer, self.memory, 0)
        self.mapped: np.ndarray | None = None
        if mappable and (host_visible or not gpu.force_staging):
            self.mapped = np.frombuffer(vk.vkMapMemory(gpu.device, self.memory, 0, size, 0), np.uint8)

    def free(self) -> None:
        vk = self.gpu.vk
        if self.mapped is not None:
            self.mapped = None
            vk.vkUnmapMemory(self.gpu.device, self.memory)
        vk.vkDestroyBuffer(self.gpu.device, self.buffer, None)
        vk.vkFreeMemory(self.gpu.device, self.memory, None)


@dataclass(frozen=True)
class Slice:
    """``size`` bytes at ``offset`` of a block: what a descriptor binds."""

    block: MemoryBlock
    offset: int
    size: int

    def view(self, dtype: np.dtype | type, shape: tuple[int, ...]) -> np.ndarray | None:
        """The slice as a host array, or None when its block is not mapped."""
        if self.block.mapped is None:
            return None
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        return self.block.mapped[self.offset:self.offset + nbytes].view(dtype).reshape(shape)


class Pool:
    """Bump allocation of slices from blocks of ``block_size`` bytes (or one block per slice
    that is larger). Slices live as long as the pool: weights, caches and per-plan inputs."""

    def __init__(self, gpu: Gpu, block_size: int, host_visible: bool) -> None:
        self.gpu = gpu
        self.block_size = block_size
        self.host_visible = host_visible
        self.blocks: list[MemoryBlock] = []
        self._top = 0
        self.used = 0

    def alloc(self, size: int) -> Slice:
        size = max(size, 4)
        aligned = -(-size // self.gpu.alignment) * self.gpu.alignment
        if not self.blocks or self._top + aligned > self.blocks[-1].size:
            self.blocks.append(MemoryBlock(self.gpu, max(self.block_size, aligned), self.host_visible))
            self._top = 0
        piece = Slice(self.blocks[-1], self._top, size)
        self._top += aligned
        self.used += size
        return piece

    def free(self) -> None:
        for block in self.blocks:
            block.free()
        self.blocks.clear()


class Transfers:
    """Uploads and downloads of slices: direct copies where the block is mapped, else through a
    host-visible staging block and a one-shot copy command."""

    def __init__(self, gpu: Gpu) -> None:
        self.gpu = gpu
        self._staging: MemoryBlock | None = None

    def _stage(self, size: int) -> MemoryBlock:
        if self._staging is None or self._staging.size < size:
            if self._staging is not None:
                self._staging.free()
            self._staging = MemoryBlock(self.gpu, max(size, 1 << 20), host_visible=True)
        return self._staging

    def upload(self, dst: Slice, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if dst.block.mapped is not None:
            dst.block.mapped[dst.offset:dst.offset + raw.nbytes] = raw
            return
        for start in range(0, raw.nbytes, _STAGING_CHUNK):
            chunk = raw[start:start + _STAGING_CHUNK]
            staging = self._stage(min(raw.nbytes, _STAGING_CHUNK))
            staging.mapped[:chunk.nbytes] = chunk
            self._copy(staging.buffer, 0, dst.block.buffer, dst.offset + start, chunk.nbytes)

    def download(self, src: Slice, out: np.ndarray) -> None:
        raw = out.reshape(-1).view(np.uint8)
        if src.block.mapped is not None:
            raw[:] = src.block.mapped[src.offset:src.offset + raw.nbytes]
            return
        for start in range(0, raw.nbytes, _STAGING_CHUNK):
            n = min(_STAGING_CHUNK, raw.nbytes - start)
            staging = self._stage(min(raw.nbytes, _STAGING_CHUNK))
            self._copy(src.block.buffer, src.offset + start, staging.buffer, 0, n)
            raw[start:start + n] = staging.mapped[:n]

    def _copy(self, src: Any, src_offset: int, dst: Any, dst_offset: int, size: int) -> None:
        vk = self.gpu.vk
        region = vk.VkBufferCopy(srcOffset=src_offset, dstOffset=dst_offset, size=size)
        self.gpu.run_once(lambda cmd: vk.vkCmdCopyBuffer(cmd, src, dst, 1, [region]))

    def free(self) -> None:
        if self._staging is not None:
            self._staging.free()
            self._staging = None
