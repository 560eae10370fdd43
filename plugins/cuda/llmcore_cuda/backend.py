"""The CUDA backend: CuPy on an NVIDIA GPU. The probe says which part is missing: the driver
(libcuda), CuPy (and which build the driver needs), or a device."""

from __future__ import annotations

import ctypes

from llmcore.plugin_api import BackendError, Device

from llmcore_gpu_kernels.backend import GpuBackend, Runtime
from llmcore_gpu_kernels.cupy_runtime import CupyRuntime, cupy_devices


def driver_version() -> int:
    """The CUDA driver's version (12040 for 12.4); BackendError when there is no driver."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise BackendError("no CUDA driver: libcuda.so.1 not found (NVIDIA's driver is not installed)") from None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        raise BackendError("the CUDA driver does not answer cuDriverGetVersion")
    return version.value


def cupy_for(driver: int) -> str:
    return "cupy-cuda13x" if driver >= 13000 else "cupy-cuda12x"


def cuda_devices() -> list[Device]:
    driver = driver_version()
    try:
        import cupy
    except ImportError:
        wheel = cupy_for(driver)
        raise BackendError(f"cupy not installed: pip install {wheel} (or the plugin's extra: "
                           f"pip install -e 'plugins/cuda[{wheel.removeprefix('cupy-').removesuffix('x')}]')") from None
    if cupy.cuda.runtime.is_hip:
        raise BackendError("cupy is its ROCm build: use --backend hip, or install cupy for CUDA")
    version = f"cuda {driver // 1000}.{driver % 1000 // 10}"
    return cupy_devices(cupy, "CUDA", lambda props: (f"sm_{props['major']}{props['minor']}", version))


class CudaBackend(GpuBackend):
    """Runs the graph on one NVIDIA GPU (``device`` numbers them as CUDA does)."""

    name = "cuda"
    priority = 30  # above sycl and vulkan: the vendor's own compute stack

    @classmethod
    def list_devices(cls) -> list[Device]:
        return cuda_devices()

    def open_runtime(self, device: int) -> Runtime:
        return CupyRuntime("cuda", device)
