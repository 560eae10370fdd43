"""The SYCL backend: OpenCL devices through pyopencl, running the shared kernels' OpenCL C.

dpctl (Intel's SYCL runtime for Python) enumerates the same OpenCL devices, PoCL's included, but
allocates only unified shared memory, which PoCL 3.1 does not offer (``USM allocation failed``),
and reaches Level Zero devices only with SPIR-V programs; OpenCL buffers through pyopencl run
everywhere an OpenCL driver exists, Intel's GPUs included, so that is the path taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcore.plugin_api import BackendError, Device

from llmcore_gpu_kernels.backend import GpuBackend, Runtime
from llmcore_gpu_kernels.render import WORKGROUP, Rendering

_KINDS = {"CPU": "cpu", "GPU": "gpu", "ACCELERATOR": "accel"}


def _cl() -> Any:
    try:
        import pyopencl
    except ImportError as error:
        raise BackendError(f"pyopencl not installed ({error}): pip install pyopencl") from None
    return pyopencl


def opencl_devices() -> list[Any]:
    """Every OpenCL device, GPUs first; BackendError naming what is missing when there is none."""
    cl = _cl()
    try:
        platforms = cl.get_platforms()
    except cl.Error as error:
        raise BackendError(f"no OpenCL platform ({error.what.code() if hasattr(error, 'what') else error}): "
                           "install an OpenCL driver (ICD), e.g. Debian's pocl-opencl-icd or intel-opencl-icd") from None
    devices = [d for p in platforms for d in p.get_devices()]
    if not devices:
        raise BackendError("no OpenCL device: the installed OpenCL platforms list none")
    return sorted(devices, key=lambda d: _kind(d) == "cpu")


def _kind(device: Any) -> str:
    cl = _cl()
    names = [name for name in _KINDS if device.type & getattr(cl.device_type, name)]
    return _KINDS[names[0]] if names else "accel"


def _describe(device: Any) -> Device:
    # "OpenCL 3.0 PoCL HSTR: ..." -> "opencl 3.0"; the driver's own name and version
    features = [f"opencl {device.version.split()[1]}", f"{device.platform.name.strip()} {device.driver_version.strip()}"]
    if "cl_khr_fp64" in device.extensions:
        features.append("fp64")
    return Device(device.name.strip(), _kind(device), device.global_mem_size, 0, tuple(features))


class OpenCLRuntime(Runtime):
    """One OpenCL device: buffers, sub-buffers as views, one in-order queue."""

    dialect = "opencl"

    def __init__(self, device: Any) -> None:
        cl = self.cl = _cl()
        self.device = device
        self.context = cl.Context([device])
        self.queue = cl.CommandQueue(self.context)
        self.alignment = max(256, device.mem_base_addr_align // 8)
        self.is_cpu = _kind(device) == "cpu"
        self.max_buffer = device.max_mem_alloc_size
        self.program: Any = None

    def alloc(self, nbytes: int) -> Any:
        try:
            return self.cl.Buffer(self.context, self.cl.mem_flags.READ_WRITE, max(nbytes, 4))
        except self.cl.Error as error:
            raise BackendError(f"sycl: out of device memory allocating {nbytes} bytes ({error})") from None

    def view(self, buffer: Any, offset: int, nbytes: int) -> Any:
        if offset == 0 and nbytes >= buffer.size:
            return buffer
        return buffer.get_sub_region(offset, min(nbytes, buffer.size - offset))

    def upload(self, buffer: Any, data: np.ndarray) -> None:
        self.cl.enqueue_copy(self.queue, buffer, np.ascontiguousarray(data), is_blocking=True)

    def download(self, buffer: Any, offset: int, out: np.ndarray) -> None:
        self.cl.enqueue_copy(self.queue, out, buffer, src_offset=offset, is_blocking=True)

    def build(self, rendering: Rendering) -> None:
        try:
            # IEEE division and square root, as the host's C computes them
            self.program = self.cl.Program(self.context, rendering.source).build("-cl-fp32-correctly-rounded-divide-sqrt")
        except self.cl.Error as error:
            first = next((line for line in str(error).splitlines() if "error" in line), str(error))
            raise BackendError(f"sycl: building the OpenCL kernels failed: {first.strip()}") from None

    def prepare(self, kernel: str, args: Sequence[Any], groups: tuple[int, int]) -> Any:
        k = self.cl.Kernel(self.program, kernel)
        k.set_args(*args)
        return k, (groups[0] * WORKGROUP, groups[1]), (WORKGROUP, 1)

    def run(self, launches: Sequence[Any]) -> None:
        for kernel, global_size, local_size in launches:
            self.cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)

    def free(self, buffer: Any) -> None:
        buffer.release()


class SyclBackend(GpuBackend):
    """Runs the graph on one OpenCL device: ``device`` numbers them as the probe lists them, GPUs
    first. ``--backend auto`` passes over CPU devices (PoCL) as it does over lavapipe."""

    name = "sycl"
    priority = 25  # above vulkan: a vendor's compute driver before a graphics API

    @classmethod
    def list_devices(cls) -> list[Device]:
        return [_describe(d) for d in opencl_devices()]

    def open_runtime(self, device: int) -> Runtime:
        devices = opencl_devices()
        if not 0 <= device < len(devices):
            raise BackendError(f"sycl: no device {device} (devices: {', '.join(d.name for d in devices)})")
        return OpenCLRuntime(devices[device])
