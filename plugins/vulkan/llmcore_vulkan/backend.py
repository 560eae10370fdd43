"""The Vulkan backend: weights and KV caches in device memory, every op a compute shader, and per
compiled plan one command buffer recorded once and replayed each step with one submit and one
fence wait."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from llmcore.plugin_api import (
    F16, F32, STEP_KEY, ArenaProgram, Availability, Backend, BackendError, Executable, GGMLType, Node, Op, Ref,
    Subgraph, WeightData, is_per_row, node_bytes, rope_cos_sin,
)

from llmcore_vulkan.device import listed_devices
from llmcore_vulkan.gpu import Gpu
from llmcore_vulkan.kernels import Kernels, binding_count
from llmcore_vulkan.lowering import CACHE_SHADERS, MAX_HEAD_DIM, WEIGHT_SHADERS, Dispatch, Target, lower
from llmcore_vulkan.memory import MemoryBlock, Pool, Slice, Transfers
from llmcore_vulkan.probe_cache import cached_probe

#: "1": llama.cpp's CPU roundings on any device with shaderFloat64 (its double-precision emulation
#: is slow on GPUs with weak fp64), "0": never; by default on CPU-type devices such as lavapipe
EXACT_ENV = "LLMCORE_VULKAN_EXACT"
#: the elementwise ops the shaders compute; anything else (soft-capping and clamping, the cache
#: rotation, mixture-of-experts routing, recurrent states, ops added to the IR later) is declined to
#: the CPU backends
_ELEMENTWISE_SHADED = frozenset({Op.ADD, Op.MUL, Op.SCALE, Op.SILU, Op.GELU, Op.SWIGLU, Op.GEGLU, Op.RMS_NORM,
                                 Op.NORM, Op.RESHAPE})
_WEIGHT_BLOCK = 256 << 20
_KV_BLOCK = 64 << 20
_HOST_BLOCK = 16 << 20


class VulkanBackend(Backend):
    """Runs the graph with compute shaders on one Vulkan device: ``device`` numbers them as the
    probe lists them, the default first (``$LLMCORE_VULKAN_DEVICE`` picks it by Vulkan index; else
    the most capable: discrete, integrated, virtual, CPU). Several instances split a model."""

    name = "vulkan"
    api_version = "2.6"
    #: above the CPU backends; ``--backend auto`` passes over a Vulkan backend whose devices are
    #: all CPU-type (lavapipe), as llama.cpp does, while ``--backend vulkan`` still uses them
    priority = 20

    @classmethod
    def probe(cls) -> Availability:
        return cached_probe(cls._probe_devices)

    @staticmethod
    def _probe_devices() -> Availability:
        try:
            return Availability(True, devices=tuple(d.describe() for d in listed_devices()))
        except BackendError as error:
            return Availability(False, str(error))

    def __init__(self, n_threads: int | None = None, device: int | None = None) -> None:
        super().__init__(n_threads, device)
        devices = listed_devices()
        if device is not None and not 0 <= device < len(devices):
            raise BackendError(f"vulkan: no device {device} (devices: {', '.join(d.name for d in devices)})")
        self.physical = devices[device or 0]
        self.gpu = Gpu(self.physical)
        self.kernels = Kernels(self.gpu)
        wanted = os.environ.get(EXACT_ENV, "auto")
        exact = self.physical.kind == "cpu" if wanted == "auto" else wanted not in ("", "0")
        self.target = Target(self.gpu.alignment, cpu=self.physical.kind == "cpu", exact=exact and self.physical.fp64)
        self.transfers = Transfers(self.gpu)
        self._weight_pool = Pool(self.gpu, _WEIGHT_BLOCK, host_visible=False)
        self._kv_pool = Pool(self.gpu, _KV_BLOCK, host_visible=False)
        self.host_pool = Pool(self.gpu, _HOST_BLOCK, host_visible=True)
        self.weights: dict[str, tuple[Slice, WeightData]] = {}
        self.caches: dict[str, tuple[Slice, np.dtype, tuple[int, ...]]] = {}
        self._mirrors: dict[str, np.ndarray] = {}  # cache views handed out, uploaded before the next run
        self.arena: MemoryBlock | None = None
        self.arena_generation = 0

    # -- capabilities ---------------------------------------------------------------------------

    def supports_op(self, node: Node) -> bool:
        limit = self.physical.max_storage_buffer_range
        if node.op in (Op.MUL_MAT, Op.GET_ROWS) and node.srcs[0].op is Op.WEIGHT:
            w = node.srcs[0]
            # asked before the weights are loaded (placement decides what to load): judge by type and size.
            # mul_mat reads whole 32-value units (every quantized type's rows are made of them)
            return (w.dtype in WEIGHT_SHADERS and node_bytes(w) <= limit
                    and (node.op is Op.GET_ROWS or w.shape[1] % 32 == 0))
        if node.op is Op.MUL_MAT:
            return False  # activation x activation products are not in the op set's llama use
        if node.op is Op.GET_ROWS:
            return node.srcs[0].dtype == F32
        if any(s.op is Op.WEIGHT and s.dtype != GGMLType.F32 for s in node.srcs):
            return False
        if node.op is Op.KV_STORE:
            return node.dtype in CACHE_SHADERS and (node.dtype == F32 or node.shape[1] % 2 == 0)
        if node.op in (Op.ADD, Op.MUL) and is_per_row(node.srcs[0].shape, node.srcs[1].shape):
            return False  # the shaders broadcast b over a's rows, not one value per row
        if node.op is Op.ATTENTION:
            head_dim = node.srcs[0].shape[2]
            k = node.srcs[1]
            # soft-capping, ALiBi, sinks, flash attention's order and caches of different types: no shader yet
            no_shader_yet = (node.params.get("softcap") or node.params.get("max_bias") or node.params.get("flash")
                             or len(node.srcs) > 4)
            return (not no_shader_yet and k.dtype in CACHE_SHADERS and node.srcs[2].dtype == k.dtype
                    and head_dim <= MAX_HEAD_DIM and head_dim % 2 == 0
                    and node_bytes(k) <= limit)
        if node.op is Op.ROPE:  # angles from the host for input positions; no frequency factors yet
            return node.shape[2] % 2 == 0 and len(node.srcs) == 2 and node.srcs[1].op is Op.INPUT
        return node.op in _ELEMENTWISE_SHADED

    # -- memory ---------------------------------------------------------------------------------

    def load_weights(self, weights: Sequence[WeightData]) -> None:
        """Uploads the raw GGUF bytes as they are: quantized blocks are decoded in the shaders."""
        for w in weights:
            piece = self._weight_pool.alloc(w.raw.nbytes)
            self.transfers.upload(piece, w.raw)
            self.weights[w.name] = (piece, w)

    def _cache(self, node: Node) -> None:
        if node.name in self.caches:
            return
        dtype = np.dtype(np.float16 if node.dtype == F16 else np.float32)
        piece = self._kv_pool.alloc(math.prod(node.shape) * dtype.itemsize)
        self.transfers.upload(piece, np.zeros(node.shape, dtype))
        self.caches[node.name] = (piece, dtype, node.shape)

    def cache_view(self, name: str) -> np.ndarray:
        """The cache as a host array. Where the device memory is host-visible (integrated GPUs,
        lavapipe) this is the mapped memory itself: reads see every finished step and writes take
        effect immediately. Otherwise it is a snapshot downloaded now; writes to it are uploaded
        at the start of the next ``run`` (and later steps do not update the snapshot: ask again)."""
        piece, dtype, shape = self.caches[name]
        view = piece.view(dtype, shape)
        if view is not None:
            return view
        mirror = np.empty(shape, dtype)
        self.transfers.download(piece, mirror)
        self._mirrors[name] = mirror
        return mirror

    def sync_cache_views(self) -> None:
        for name, mirror in self._mirrors.items():
            self.transfers.upload(self.caches[name][0], mirror)
        self._mirrors.clear()

    def ensure_arena(self, size: int) -> None:
        """Grow the compute arena every plan shares (runs never overlap) to ``size`` bytes; plans
        recorded against the old one re-bind and re-record on their next run."""
        if self.arena is not None and self.arena.size >= size:
            return
        if self.arena is not None:
            self.gpu.wait_idle()
            self.arena.free()
        self.arena = MemoryBlock(self.gpu, max(size, 1 << 20), host_visible=False)
        self.arena_generation += 1

    def memory_used(self) -> dict[str, int]:
        return {
            "weights": self._weight_pool.used,
            "kv": self._kv_pool.used,
            "compute": (self.arena.size if self.arena is not None else 0) + self.host_pool.used,
        }

    # -- plans ----------------------------------------------------------------------------------

    def compile(self, subgraph: Subgraph) -> Executable:
        for node in subgraph.caches:
            self._cache(node)
        program = lower(subgraph, self.target)
        self.ensure_arena(program.arena_size)
        return VulkanExecutable(self, program)

    def resolve(self, ref: Ref, io: Mapping[str, Slice]) -> Slice:
        """The memory a binding points at."""
        if ref.space == "weight":
            return self.weights[ref.key][0]
        if ref.space == "cache":
            return self.caches[ref.key][0]
        if ref.space == "io":
            return io[ref.key]
        return Slice(self.arena, 0, self.arena.size)  # arena: offset added by the plan


class VulkanExecutable(Executable):
    """One plan: its descriptor sets and its command buffer, re-recorded only when the shared
    arena moved (a larger plan was compiled since), never per step."""

    def __init__(self, backend: VulkanBackend, program: ArenaProgram[Dispatch]) -> None:
        self.backend = backend
        self.program = program
        gpu = backend.gpu
        vk = gpu.vk
        self.io = {key: backend.host_pool.alloc(size) for key, size in program.io.items()}
        self._step = self.io[STEP_KEY].view(np.uint32, (4,))
        self._inputs = [(node_id, self.io[key].view(np.dtype(dtype), shape))
                        for node_id, key, dtype, shape in program.inputs]
        self._rope_tables = [(self.io[key], node_id, rope) for key, node_id, rope in program.rope_tables]
        dispatches = program.steps
        n_sets = max(1, len(dispatches))
        n_buffers = max(1, sum(len(d.refs) for d in dispatches))
        self.descriptor_pool = vk.vkCreateDescriptorPool(gpu.device, vk.VkDescriptorPoolCreateInfo(
            maxSets=n_sets, poolSizeCount=1,
            pPoolSizes=[vk.VkDescriptorPoolSize(type=vk.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount=n_buffers)]), None)
        layouts = [backend.kernels.set_layout(binding_count(d.shader)) for d in dispatches]
        self.sets = vk.vkAllocateDescriptorSets(gpu.device, vk.VkDescriptorSetAllocateInfo(
            descriptorPool=self.descriptor_pool, descriptorSetCount=len(layouts), pSetLayouts=layouts)) if layouts else []
        self.pipelines = [backend.kernels.pipeline(d.shader, d.spec) for d in dispatches]
        self.command_buffer = gpu.command_buffer()
        self._readback: list[tuple[Slice, Slice]] = []  # (arena value, host copy) where the arena is unmapped
        self._generation = -1

    def _slice(self, ref: Ref) -> Slice:
        piece = self.backend.resolve(ref, self.io)
        size = -(-ref.size // 4) * 4  # shaders read whole words; allocations are padded to 256 bytes
        if ref.space == "arena":
            return Slice(piece.block, self.program.arena_offsets[ref.key], size)
        return Slice(piece.block, piece.offset, size)

    def _bind_and_record(self) -> None:
        backend = self.backend
        vk = backend.gpu.vk
        writes = []
        for dispatch, dset in zip(self.program.steps, self.sets):
            for binding, ref in enumerate(dispatch.refs):
                piece = self._slice(ref)
                writes.append(vk.VkWriteDescriptorSet(
                    dstSet=dset, dstBinding=binding, descriptorCount=1,
                    descriptorType=vk.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                    pBufferInfo=[vk.VkDescriptorBufferInfo(buffer=piece.block.buffer, offset=piece.offset, range=piece.size)]))
        if writes:
            vk.vkUpdateDescriptorSets(backend.gpu.device, len(writes), writes, 0, None)
        self._readback = []
        if backend.arena.mapped is None:
            self._readback = [(self._slice(ref), backend.host_pool.alloc(ref.size))
                              for ref, _, _ in self.program.outputs if ref.space == "arena"]
        self._record()
        self._generation = backend.arena_generation

    def _record(self) -> None:
        vk = self.backend.gpu.vk
        cmd = self.command_buffer
        kernels = self.backend.kernels
        vk.vkResetCommandBuffer(cmd, 0)
        vk.vkBeginCommandBuffer(cmd, vk.VkCommandBufferBeginInfo())
        compute = vk.VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT
        barrier = [vk.VkMemoryBarrier(srcAccessMask=vk.VK_ACCESS_SHADER_WRITE_BIT,
                                      dstAccessMask=vk.VK_ACCESS_SHADER_READ_BIT | vk.VK_ACCESS_SHADER_WRITE_BIT)]
        for dispatch, dset, pipeline in zip(self.program.steps, self.sets, self.pipelines):
            layout = kernels.pipeline_layout(binding_count(dispatch.shader))
            vk.vkCmdBindPipeline(cmd, vk.VK_PIPELINE_BIND_POINT_COMPUTE, pipeline)
            vk.vkCmdBindDescriptorSets(cmd, vk.VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, [dset], 0, None)
            vk.vkCmdPushConstants(cmd, layout, vk.VK_SHADER_STAGE_COMPUTE_BIT, 0, len(dispatch.push),
                                  vk.ffi.from_buffer(dispatch.push))
            vk.vkCmdDispatch(cmd, *dispatch.groups)
            vk.vkCmdPipelineBarrier(cmd, compute, compute, 0, 1, barrier, 0, None, 0, None)
        if self._readback:
            to_transfer = [vk.VkMemoryBarrier(srcAccessMask=vk.VK_ACCESS_SHADER_WRITE_BIT,
                                              dstAccessMask=vk.VK_ACCESS_TRANSFER_READ_BIT)]
            vk.vkCmdPipelineBarrier(cmd, compute, vk.VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, to_transfer, 0, None, 0, None)
            for src, dst in self._readback:
                region = vk.VkBufferCopy(srcOffset=src.offset, dstOffset=dst.offset, size=src.size)
                vk.vkCmdCopyBuffer(cmd, src.block.buffer, dst.block.buffer, 1, [region])
            to_host = [vk.VkMemoryBarrier(srcAccessMask=vk.VK_ACCESS_TRANSFER_WRITE_BIT,
                                          dstAccessMask=vk.VK_ACCESS_HOST_READ_BIT)]
            vk.vkCmdPipelineBarrier(cmd, vk.VK_PIPELINE_STAGE_TRANSFER_BIT, vk.VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                                    to_host, 0, None, 0, None)
        vk.vkEndCommandBuffer(cmd)

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        backend = self.backend
        backend.sync_cache_views()
        if self._generation != backend.arena_generation:
            self._bind_and_record()
        for node_id, view in self._inputs:
            view[...] = inputs[node_id].reshape(view.shape)
        for piece, positions_id, rope in self._rope_tables:
            cos, sin = rope_cos_sin(rope, np.asarray(inputs[positions_id]).ravel())
            piece.view(np.float32, (2,) + cos.shape)[...] = (cos, sin)
        self._step[0] = n_kv
        backend.gpu.submit_and_wait(self.command_buffer)
        return self._outputs()

    def _outputs(self) -> list[np.ndarray]:
        results = []
        readback = iter(self._readback)
        for ref, shape, dtype in self.program.outputs:
            if ref.space == "arena" and self._readback:
                piece = next(readback)[1]
            else:
                piece = self._slice(ref)
            view = piece.view(np.dtype(dtype), shape)
            host = np.array(view) if view is not None else self._download(piece, shape, dtype)
            results.append(host.astype(np.float32, copy=False))  # f16 caches come back as float32
        return results

    def _download(self, piece: Slice, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        out = np.empty(shape, np.dtype(dtype))
        self.backend.transfers.download(piece, out)
        return out
