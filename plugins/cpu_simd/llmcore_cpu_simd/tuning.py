"""Choices timed on this CPU rather than fixed, once per library and CPU (``host_cpu``), best of a
few runs, and kept beside the compiled library:

- for each weight type with a several-row GEMV, whether a one-token product takes it asking for its
  bytes ahead ("gemv"), takes it leaving that to the hardware prefetchers ("gemv, hardware
  prefetch") or goes row by row (the type's two-row tile where it has one, else vec_dot: what the
  product runs without the GEMV); all give the same bits; which one streams weights fastest depends
  on the CPU's prefetchers and caches (the software prefetch won 1.5-3x on Zen 4, whose prefetchers
  follow the four rows' streams badly), timed on weights larger than the caches;
- how many chunks per thread a product's rows are cut into, for one token and for a batch (rows are
  independent, so any count gives the same bits; more chunks even out a thread the OS delays, fewer
  keep each thread's run of weight rows long), timed on a chain of products as a model runs them."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from llmcore.plugin_api import GGML_QUANT_SIZES, GGMLType, host_cpu

from llmcore_cpu_simd import isa
from llmcore_cpu_simd.buffers import ALIGN, aligned_array, aligned_bytes

# the weights a decode step streams are rarely in cache: time them from RAM, each run on the next of
# a few copies that together outgrow the largest cache (one copy re-read stayed in Zen 4's 32 MB L3,
# where the AVX2 build's Q6_K GEMV won, while from RAM it ran at two thirds of vec_dot row by row's speed)
WEIGHT_BYTES = 16 << 20  # a copy
DEFAULT_CACHE_BYTES = 32 << 20  # where sysfs does not say
CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
WIDTH = 1024  # values per row (a multiple of every block size)
REPEATS = 5

CHUNK_COUNTS = (1, 2, 4, 8)  # chunks per thread tried
DEFAULT_CHUNKS = 4  # ops.c's until it is told otherwise
# another choice replaces the default (4 chunks; the GEMV) only where its best run beats the
# default's by 5% in each of three rounds: on a busy machine (a loaded 2-core VM) one round's winner
# was noise, a different count each time, and a slow minute once sent Q8_0 row by row
MARGIN = 0.95
ROUNDS = 3
CHUNK_REPEATS = 3  # per round
# the products timed: one token through a chain of 0.6 MB matrices (a small model's) that together
# outgrow the caches, as a decode step streams them; a 128-token batch through two of them
CHAIN_ROWS = 1024
CHAINS = {"one token": (1, 64), "batch": (128, 2)}  # tokens, products in the chain


def one_token_paths(lib, ffi, library_path: Path) -> dict[str, dict]:
    """Per weight type with a GEMV, the path its one-token products take on this CPU (a key of
    ``_path_codes``) and each path's timing (ns per row), timed now where the cache beside
    ``library_path`` lacks them; applied to ``lib`` (opened through ``ffi``)."""
    paths = _cached(library_path, "one-token paths", lambda: {
        t.name: _time_type(lib, ffi, t) for t in GGMLType if lib.lc_has_one_token_gemv(int(t))})
    codes = _path_codes(lib)
    for name, picked in paths.items():
        lib.lc_set_one_token_path(int(GGMLType[name]), codes[picked["path"]])
    return paths


def _path_codes(lib) -> dict[str, int]:
    """The one-token paths by name, as the library numbers them"""
    return {"gemv": lib.LC_ONE_TOKEN_GEMV, "gemv, hardware prefetch": lib.LC_ONE_TOKEN_GEMV_HARDWARE_PREFETCH,
            "row by row": lib.LC_ONE_TOKEN_ROW_BY_ROW}


def mul_mat_chunks(lib, ffi, library_path: Path) -> dict[str, dict]:
    """Chunks per thread for one-token and batch products ("one token", "batch": the count and each
    candidate's best milliseconds), timed now where the cache beside ``library_path`` lacks them;
    applied to ``lib``."""
    chunks = _cached(library_path, "mul_mat chunks per thread", lambda: _time_chunks(lib, ffi))
    lib.lc_set_mul_mat_chunks(chunks["one token"]["chunks"], chunks["batch"]["chunks"])
    return chunks


def _cached(library_path: Path, part: str, measure: Callable[[], dict]) -> dict:
    """``part`` of this CPU's entry in the tuning cache beside ``library_path``, measured and
    stored now if it is not there (the other CPUs' entries are kept)."""
    cache = library_path.with_suffix(".tuning.json")
    key = host_cpu()
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):
        stored = {}
    entry = stored.setdefault(key, {})
    if part not in entry:
        entry[part] = measure()
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
        tmp.replace(cache)
    return entry[part]


def choice(rounds: list[dict], default):
    """The option (a key of each round's seconds) with the best run over ``rounds``, where it beats
    ``default`` by the margin in every round; else ``default``."""
    fastest = min(rounds[0], key=lambda option: min(r[option] for r in rounds))
    return fastest if all(r[fastest] < MARGIN * r[default] for r in rounds) else default


def _largest_cache_bytes() -> int:
    """The size of the first CPU's largest cache (sysfs), ``DEFAULT_CACHE_BYTES`` where unknown."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    sizes = []
    for entry in CACHE_DIR.glob("index*/size"):
        try:
            text = entry.read_text().strip()
        except OSError:
            continue
        digits, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "")
        if digits.isdigit():
            sizes.append(int(digits) * units.get(unit, 1))
    return max(sizes, default=DEFAULT_CACHE_BYTES)


def _time_type(lib, ffi, weight_type: GGMLType) -> dict:
    block, type_size = GGML_QUANT_SIZES[weight_type]
    row_bytes = WIDTH // block * type_size
    rows = WEIGHT_BYTES // row_bytes // 4 * 4
    copy_bytes = rows * row_bytes
    # enough copies that one is read again only after more bytes than the cache holds
    copies = 2 + -(-_largest_cache_bytes() // copy_bytes)
    rng = np.random.default_rng(0)
    # random bytes (the kernels' speed does not depend on the values) and one activation row in the
    # type's vec_dot format
    weights = np.tile(np.frombuffer(rng.bytes(copy_bytes), np.uint8), copies)
    x_type = lib.lc_traits[int(weight_type)].vec_dot_type
    x_block, x_size = GGML_QUANT_SIZES[GGMLType(x_type)]
    activations = np.zeros(WIDTH // x_block * x_size, np.uint8)
    # bound to a name: ffi.cast's pointer does not keep from_buffer's array alive, a temporary was freed
    # before the C call read it
    row = rng.standard_normal(WIDTH).astype(np.float32)
    lib.lc_quantize_row(x_type, ffi.cast("float *", ffi.from_buffer(row)), ffi.from_buffer(activations), WIDTH)
    y = np.zeros(rows, np.float32)
    x, out = ffi.from_buffer(activations), ffi.cast("float *", ffi.from_buffer(y))
    codes = _path_codes(lib)
    runs = itertools.count()

    def run_on_next_copy(path: str) -> float:
        w = ffi.from_buffer(weights[next(runs) % copies * copy_bytes:])
        return lib.lc_time_one_token(int(weight_type), codes[path], WIDTH, w, row_bytes, rows, x, out, 1)

    rounds = []
    for _ in range(ROUNDS):
        best = dict.fromkeys(codes, float("inf"))
        for _ in range(REPEATS):  # the paths taking turns, so that a busy spell slows each alike
            for path in codes:
                best[path] = min(best[path], run_on_next_copy(path))
        rounds.append(best)
    return {"path": choice(rounds, "gemv"),
            **{f"{path} ns/row": round(min(r[path] for r in rounds) * 1e9 / rows, 2) for path in codes}}


def _time_chunks(lib, ffi) -> dict[str, dict]:
    """Each chain of ``CHAINS`` run with every count of ``CHUNK_COUNTS``, in rounds, on as
    many threads as the backend's default; per chain the fastest count by its best run, the
    default unless another beats it by more than the noise margin."""
    weight_type = GGMLType.Q4_1  # the default model's
    block, type_size = GGML_QUANT_SIZES[weight_type]
    row_bytes = WIDTH // block * type_size
    matrix_bytes = CHAIN_ROWS * row_bytes
    threads = isa.physical_cores()
    pool = ffi.gc(lib.lc_pool_new(threads), lib.lc_pool_free)
    rng = np.random.default_rng(0)
    longest = max(n for _, n in CHAINS.values())
    weights = aligned_bytes(longest * matrix_bytes)
    weights[:] = np.frombuffer(rng.bytes(weights.nbytes), np.uint8)
    # every block's scale and minimum a plain 1.0: random bytes would hold NaNs and subnormals
    weights.reshape(-1, type_size)[:, :4] = np.frombuffer(np.float16([1.0, 1.0]).tobytes(), np.uint8)
    x_type = lib.lc_traits[int(weight_type)].vec_dot_type
    x_block, x_size = GGML_QUANT_SIZES[GGMLType(x_type)]
    x_bytes = WIDTH // x_block * x_size
    max_tokens = max(m for m, _ in CHAINS.values())
    activations = aligned_bytes(max_tokens * x_bytes)
    inputs = rng.standard_normal((max_tokens, WIDTH)).astype(np.float32)
    for t in range(max_tokens):
        lib.lc_quantize_row(x_type, ffi.cast("float *", ffi.from_buffer(inputs[t])),
                            ffi.from_buffer(activations[t * x_bytes:]), WIDTH)
    out = aligned_array((max_tokens, CHAIN_ROWS), np.float32)
    # each thread's scratch as the lowering sizes it: the packed GEMM's unpacked block of rows
    packed_floats = -(-lib.lc_packed_bytes(int(weight_type), WIDTH) // 4)
    floats = -(-(packed_floats + ALIGN) // 16) * 16
    scratch = aligned_array((threads * floats,), np.float32)
    chosen = {}
    for name, (tokens, n_products) in CHAINS.items():
        nodes = ffi.new("lc_node[]", n_products)
        for i, node in enumerate(nodes):
            node.op, node.type = lib.LC_OP_MUL_MAT, int(weight_type)
            node.src[0] = ffi.from_buffer(weights[i * matrix_bytes:])
            node.src[1] = ffi.from_buffer(activations)
            node.dst = ffi.from_buffer(out)
            node.ne[0], node.ne[1], node.ne[2], node.ne[3] = WIDTH, tokens, CHAIN_ROWS, x_bytes
            node.row_bytes, node.run, node.barrier_after = row_bytes, lib.LC_RUN_ALL, 1
        program = ffi.new("lc_program *", {"nodes": nodes, "n_nodes": n_products, "pool": pool,
                                           "scratch": ffi.cast("float *", ffi.from_buffer(scratch)),
                                           "scratch_floats": floats})
        rounds = [_best_runs(lib, program) for _ in range(ROUNDS)]
        best = {c: min(r[c] for r in rounds) for c in CHUNK_COUNTS}
        chosen[name] = {"chunks": choice(rounds, DEFAULT_CHUNKS),
                        **{f"{c} ms": round(s * 1e3, 3) for c, s in best.items()}}
    return chosen


def _best_runs(lib, program) -> dict[int, float]:
    """The best of ``CHUNK_REPEATS`` runs of ``program`` in seconds, per count of chunks, the
    counts taking turns so that a busy spell slows each alike."""
    best = dict.fromkeys(CHUNK_COUNTS, float("inf"))
    for _ in range(CHUNK_REPEATS):
        for count in CHUNK_COUNTS:
            lib.lc_set_mul_mat_chunks(count, count)
            start = time.perf_counter()
            lib.lc_graph_run(program, 0)
            best[count] = min(best[count], time.perf_counter() - start)
    return best
