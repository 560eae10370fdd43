"""The runtime of the cuda and hip plugins: CuPy, whose RawModule compiles the kernels' CUDA
rendering with NVRTC, or their HIP rendering with hiprtc in CuPy's ROCm build; device memory as
CuPy arrays of bytes, views as slices of them, launches on one stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llmcore.plugin_api import BackendError, Device

from llmcore_gpu_kernels.backend import Runtime
from llmcore_gpu_kernels.render import WORKGROUP, Rendering


def cupy_devices(cupy: Any, api: str, features: Callable[[dict], tuple[str, ...]]) -> list[Device]:
    """The devices CuPy's runtime (``api``: "CUDA" or "HIP") lists; BackendError when none."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise BackendError(f"no {api} device ({error})") from None
    if count == 0:
        raise BackendError(f"no {api} device (the {api} runtime reports 0 devices)")
    devices = []
    for index in range(count):
        props = cupy.cuda.runtime.getDeviceProperties(index)
        free, total = cupy.cuda.Device(index).mem_info
        devices.append(Device(props["name"].decode(), "igpu" if props["integrated"] else "gpu", total, free,
                              features(props)))
    return devices


class CupyRuntime(Runtime):
    """One device of CuPy's build: ``dialect`` "cuda" (NVRTC) or "hip" (hiprtc)."""

    def __init__(self, dialect: str, device: int) -> None:
        import cupy

        self.cp = cupy
        self.dialect = dialect
        self.device = cupy.cuda.Device(device)
        self.device.use()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.max_buffer = cupy.cuda.runtime.getDeviceProperties(device)["totalGlobalMem"]
        self.module: Any = None

    def alloc(self, nbytes: int) -> Any:
        try:
            return self.cp.empty(max(nbytes, 4), dtype=self.cp.uint8)
        except self.cp.cuda.memory.OutOfMemoryError:
            raise BackendError(f"{self.dialect}: out of device memory allocating {nbytes} bytes") from None

    def view(self, buffer: Any, offset: int, nbytes: int) -> Any:
        return buffer[offset:offset + nbytes]

    def upload(self, buffer: Any, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        buffer[:raw.nbytes].set(raw, stream=self.stream)
        self.stream.synchronize()

    def download(self, buffer: Any, offset: int, out: np.ndarray) -> None:
        raw = out.reshape(-1).view(np.uint8)
        buffer[offset:offset + raw.nbytes].get(stream=self.stream, out=raw)
        self.stream.synchronize()

    def build(self, rendering: Rendering) -> None:
        try:
            self.module = self.cp.RawModule(code=rendering.source, options=("--std=c++17",))
            self.module.compile()
        except self.cp.cuda.compiler.CompileException as error:
            first = next((line for line in str(error).splitlines() if "error" in line), str(error))
            raise BackendError(f"{self.dialect}: compiling the kernels failed: {first.strip()}") from None

    def prepare(self, kernel: str, args: Sequence[Any], groups: tuple[int, int]) -> Any:
        return self.module.get_function(kernel), (groups[0], groups[1], 1), tuple(args)

    def run(self, launches: Sequence[Any]) -> None:
        with self.stream:
            for function, grid, args in launches:
                function(grid, (WORKGROUP, 1, 1), args)

    def free(self, buffer: Any) -> None:
        """CuPy returns the memory to its pool when the last reference goes."""
