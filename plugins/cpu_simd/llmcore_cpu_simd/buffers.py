"""Arrays whose data starts on a cache line, as the C kernels' widest loads want them: the lowering's
arena, inputs and scratch, and the tuning's timed weights."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ALIGN = 64  # bytes: a cache line, and the widest vector load


def aligned_bytes(size: int) -> np.ndarray:
    """A zeroed byte array of ``size`` whose data starts on an ALIGN boundary."""
    raw = np.zeros(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + size]


def aligned_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zeroed array of ``shape`` and ``dtype`` whose data starts on an ALIGN boundary."""
    itemsize = np.dtype(dtype).itemsize
    return aligned_bytes(math.prod(shape) * itemsize).view(dtype).reshape(shape)
