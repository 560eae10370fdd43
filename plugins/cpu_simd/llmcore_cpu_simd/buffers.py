"""Arrays whose data starts on a cache line, as the C kernels' widest loads want them: the lowering's
arena, inputs and scratch, and the tuning's timed weights; and the weights' arena of 2 MB pages."""

from __future__ import annotations

import math
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

ALIGN = 64  # bytes: a cache line, and the widest vector load
HUGE_PAGE = 2 << 20  # bytes: x86-64's (and 4 KB-granule arm64's) transparent huge page
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MEMINFO = Path("/proc/meminfo")
#: ``0`` keeps the weights off huge pages where the kernel would give them (the 4 KB-page path, on purpose)
HUGE_PAGES_ENV = "LLMCORE_CPU_SIMD_HUGE_PAGES"


def aligned_bytes(size: int) -> np.ndarray:
    """A zeroed byte array of ``size`` whose data starts on an ALIGN boundary."""
    raw = np.zeros(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + size]


def aligned_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zeroed array of ``shape`` and ``dtype`` whose data starts on an ALIGN boundary."""
    itemsize = np.dtype(dtype).itemsize
    return aligned_bytes(math.prod(shape) * itemsize).view(dtype).reshape(shape)


def huge_page_bytes(size: int) -> np.ndarray | None:
    """A zeroed byte array of ``size`` in anonymous memory the kernel is asked to back with 2 MB
    pages (transparent huge pages, madvise), starting on a page of them; None where the kernel
    offers none (no THP, or disabled), where ``size`` exceeds half the memory available, or where
    ``$LLMCORE_CPU_SIMD_HUGE_PAGES`` is ``0``."""
    if os.environ.get(HUGE_PAGES_ENV) == "0":
        return None
    try:
        modes = THP_MODE.read_text()
        available = next(int(line.split()[1]) * 1024 for line in MEMINFO.read_text().splitlines()
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    if "[never]" in modes or not hasattr(mmap, "MADV_HUGEPAGE") or 2 * size > available:
        return None
    # private: shared anonymous memory is shmem, whose huge pages another setting (shmem_enabled) gates
    region = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # zeroed; the array keeps it alive
    region.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(region, np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start:start + size]
