"""The HIP backend: CuPy's ROCm build on an AMD GPU. The probe says which part is missing: the
ROCm runtime (libamdhip64), CuPy's ROCm build, or a device."""

from __future__ import annotations

import ctypes

from llmcore.plugin_api import BackendError, Device

from llmcore_gpu_kernels.backend import GpuBackend, Runtime
from llmcore_gpu_kernels.cupy_runtime import CupyRuntime, cupy_devices


def hip_devices() -> list[Device]:
    try:
        ctypes.CDLL("libamdhip64.so")
    except OSError:
        raise BackendError("no ROCm runtime: libamdhip64.so not found (AMD's ROCm is not installed)") from None
    try:
        import cupy
    except ImportError:
        raise BackendError("cupy not installed: pip install cupy-rocm-7-0 (or pip install -e 'plugins/hip[rocm7]')") from None
    if not cupy.cuda.runtime.is_hip:
        raise BackendError("cupy is its CUDA build: install CuPy's ROCm build (cupy-rocm-7-0) for --backend hip")
    return cupy_devices(cupy, "HIP", lambda props: (props["gcnArchName"].decode(),))


class HipBackend(GpuBackend):
    """Runs the graph on one AMD GPU (``device`` numbers them as HIP does)."""

    name = "hip"
    priority = 30

    @classmethod
    def list_devices(cls) -> list[Device]:
        return hip_devices()

    def open_runtime(self, device: int) -> Runtime:
        return CupyRuntime("hip", device)
