"""Choices timed on this CPU rather than fixed: for each weight type with a several-row GEMV, whether a
one-token product takes it or vec_dot row by row (both give the same bits; which one streams weights
faster depends on the CPU's prefetchers and caches). Timed once per library and CPU (``host_cpu``) on
weights larger than the caches, best of a few runs, and kept beside the compiled library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from llmcore.plugin_api import GGML_QUANT_SIZES, GGMLType, host_cpu

WEIGHT_BYTES = 16 << 20  # the weights a decode step streams are rarely in cache: time them from RAM
WIDTH = 1024  # values per row (a multiple of every block size)
REPEATS = 5


def one_token_paths(lib, ffi, library_path: Path) -> dict[str, dict]:
    """Per weight type with a GEMV, the path its one-token products take on this CPU ("gemv" or
    "row by row") and the two timings (ns per row), timed now where the cache beside
    ``library_path`` lacks them; applied to ``lib`` (opened through ``ffi``)."""
    cache = library_path.with_suffix(".tuning.json")
    key = host_cpu()
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):
        stored = {}
    paths = stored.get(key)
    if paths is None:
        paths = {t.name: _time_type(lib, ffi, t) for t in GGMLType if lib.lc_has_one_token_gemv(int(t))}
        stored[key] = paths
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
        tmp.replace(cache)
    for name, choice in paths.items():
        lib.lc_set_one_token_gemv(int(GGMLType[name]), int(choice["path"] == "gemv"))
    return paths


def _time_type(lib, ffi, weight_type: GGMLType) -> dict:
    block, type_size = GGML_QUANT_SIZES[weight_type]
    row_bytes = WIDTH // block * type_size
    rows = WEIGHT_BYTES // row_bytes // 4 * 4
    rng = np.random.default_rng(0)
    # random bytes (the kernels' speed does not depend on the values) and one activation row in the
    # type's vec_dot format
    weights = np.frombuffer(bytearray(rng.bytes(rows * row_bytes)), np.uint8)
    x_type = lib.lc_traits[int(weight_type)].vec_dot_type
    x_block, x_size = GGML_QUANT_SIZES[GGMLType(x_type)]
    activations = np.zeros(WIDTH // x_block * x_size, np.uint8)
    lib.lc_quantize_row(x_type, ffi.cast("float *", ffi.from_buffer(
        rng.standard_normal(WIDTH).astype(np.float32))), ffi.from_buffer(activations), WIDTH)
    y = np.zeros(rows, np.float32)
    w, x, out = ffi.from_buffer(weights), ffi.from_buffer(activations), ffi.cast("float *", ffi.from_buffer(y))
    seconds = {path: lib.lc_time_one_token(int(weight_type), path == "gemv", WIDTH, w, row_bytes, rows, x, out, REPEATS)
               for path in ("gemv", "row by row")}
    best = min(seconds, key=seconds.get)
    return {"path": best, **{f"{path} ns/row": round(s * 1e9 / rows, 2) for path, s in seconds.items()}}

