"""The Metal backend: shared-storage MTLBuffers (Apple GPUs share memory with the CPU), one
compute pipeline per kernel, and each step's launches encoded into one command buffer (serial
dispatches: each sees the writes of the one before). Not yet run on a Mac."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcore.plugin_api import BackendError, Device

from llmcore_gpu_kernels.backend import GpuBackend, Runtime
from llmcore_gpu_kernels.render import WORKGROUP, Rendering


def _metal() -> Any:
    if sys.platform != "darwin":
        raise BackendError("no Metal device: macOS only")
    try:
        import Metal
    except ImportError:
        raise BackendError("pyobjc-framework-Metal not installed: pip install pyobjc-framework-Metal") from None
    return Metal


def metal_devices() -> list[Any]:
    devices = list(_metal().MTLCopyAllDevices())
    if not devices:
        raise BackendError("no Metal device: MTLCopyAllDevices lists none")
    return devices


class MetalRuntime(Runtime):
    """One Metal device: buffers in shared storage, a view being (buffer, byte offset)."""

    dialect = "metal"

    def __init__(self, device: Any) -> None:
        self.metal = _metal()
        self.device = device
        self.queue = device.newCommandQueue()
        self.max_buffer = device.maxBufferLength()
        self.pipelines: dict[str, Any] = {}
        self.library: Any = None

    def alloc(self, nbytes: int) -> Any:
        buffer = self.device.newBufferWithLength_options_(max(nbytes, 4), self.metal.MTLResourceStorageModeShared)
        if buffer is None:
            raise BackendError(f"metal: out of device memory allocating {nbytes} bytes")
        return buffer

    def _bytes(self, buffer: Any) -> np.ndarray:
        return np.frombuffer(buffer.contents().as_buffer(buffer.length()), np.uint8)

    def view(self, buffer: Any, offset: int, nbytes: int) -> Any:
        return buffer, offset

    def upload(self, buffer: Any, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        self._bytes(buffer)[:raw.nbytes] = raw

    def download(self, buffer: Any, offset: int, out: np.ndarray) -> None:
        raw = out.reshape(-1).view(np.uint8)
        raw[:] = self._bytes(buffer)[offset:offset + raw.nbytes]

    def build(self, rendering: Rendering) -> None:
        options = self.metal.MTLCompileOptions.new()
        options.setFastMathEnabled_(False)  # IEEE division, no reassociation: llama.cpp's roundings
        self.library, error = self.device.newLibraryWithSource_options_error_(rendering.source, options, None)
        if self.library is None:
            raise BackendError(f"metal: compiling the kernels failed: {str(error).splitlines()[0]}")

    def _pipeline(self, kernel: str) -> Any:
        if kernel not in self.pipelines:
            function = self.library.newFunctionWithName_(kernel)
            pipeline, error = self.device.newComputePipelineStateWithFunction_error_(function, None)
            if pipeline is None:
                raise BackendError(f"metal: pipeline {kernel}: {error}")
            self.pipelines[kernel] = pipeline
        return self.pipelines[kernel]

    def prepare(self, kernel: str, args: Sequence[Any], groups: tuple[int, int]) -> Any:
        return self._pipeline(kernel), list(args), groups

    def run(self, launches: Sequence[Any]) -> None:
        command_buffer = self.queue.commandBuffer()
        encoder = command_buffer.computeCommandEncoder()
        for pipeline, args, groups in launches:
            encoder.setComputePipelineState_(pipeline)
            for index, arg in enumerate(args):
                if isinstance(arg, tuple):
                    encoder.setBuffer_offset_atIndex_(arg[0], arg[1], index)
                else:  # a numpy scalar: a `constant T&` parameter
                    encoder.setBytes_length_atIndex_(arg.tobytes(), arg.nbytes, index)
            encoder.dispatchThreadgroups_threadsPerThreadgroup_(self.metal.MTLSizeMake(groups[0], groups[1], 1),
                                                                self.metal.MTLSizeMake(WORKGROUP, 1, 1))
        encoder.endEncoding()
        command_buffer.commit()
        command_buffer.waitUntilCompleted()

    def free(self, buffer: Any) -> None:
        """Released with the last reference (pyobjc's retain count)."""


class MetalBackend(GpuBackend):
    """Runs the graph on one Apple GPU (``device`` numbers them as MTLCopyAllDevices lists them)."""

    name = "metal"
    priority = 30

    @classmethod
    def list_devices(cls) -> list[Device]:
        return [Device(str(d.name()), "igpu" if d.hasUnifiedMemory() else "gpu", d.recommendedMaxWorkingSetSize(), 0,
                       ("metal",)) for d in metal_devices()]

    def open_runtime(self, device: int) -> Runtime:
        devices = metal_devices()
        if not 0 <= device < len(devices):
            raise BackendError(f"metal: no device {device}")
        return MetalRuntime(devices[device])
