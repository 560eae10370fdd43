"""Choices timed on this CPU rather than fixed, once per library and CPU (``host_cpu``), best of a
few runs, and kept beside the compiled library:

- for each weight type with a several-row GEMV, whether a one-token product takes it asking for its
  bytes ahead ("gemv"), asking for them 4 KB farther ahead ("gemv, prefetch farther": for memory that
  answers later), takes it leaving that to the hardware prefetchers ("gemv, hardware prefetch") or
  goes row by row (the type's two-row tile where it has one, else vec_dot: what the
  product runs without the GEMV); all give the same bits; which one streams weights fastest depends
  on the CPU's prefetchers and caches (the software prefetch won 1.5-3x on Zen 4, whose prefetchers
  follow the four rows' streams badly), timed on a chain of the type's products larger than the
  caches, on the decode's threads;
- how many chunks per thread a product's rows are cut into, for one token and for a batch (rows are
  independent, so any count gives the same bits; more chunks even out a thread the OS delays, fewer
  keep each thread's run of weight rows long), timed on a chain of products as a model runs them;
- how many tokens a prompt's packed GEMM takes at once with each block of weight rows (a tile's
  columns: more reuse each loaded weight vector, fewer need fewer registers), for the 32-block types
  and for the K-quants and i-quants, timed on a batch's chain of the family's products."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from llmcore.plugin_api import GGML_QUANT_SIZES, GGMLType, host_cpu

from llmcore_cpu_simd import isa
from llmcore_cpu_simd.buffers import ALIGN, aligned_array, aligned_bytes

DEFAULT_CACHE_BYTES = 32 << 20  # where sysfs does not say
CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
WIDTH = 1024  # values per row (a multiple of every block size)
CHAIN_ROWS = 1024  # rows per product

CHUNK_COUNTS = (1, 2, 4, 8)  # chunks per thread tried
DEFAULT_CHUNKS = 4  # ops.c's until it is told otherwise
# another choice replaces the default (4 chunks; the GEMV) only where its best run beats the
# default's by 5% in each of three rounds: on a busy machine (a loaded 2-core VM) one round's winner
# was noise, a different count each time, and a slow minute once sent Q8_0 row by row
MARGIN = 0.95
ROUNDS = 3
REPEATS = 3  # per round
# The products timed, as a model runs them: for chunk counts one token through a chain of 0.6 MB
# matrices (a small model's) that together outgrow the caches, as a decode step streams them, and a
# 128-token batch through two of them; for one-token paths a chain of each type twice the largest
# cache's size, on the decode's threads: one thread alone from RAM misjudged the GEMVs (Zen 4's
# AVX-512 build, Q6_K's four-row GEMV: 15-25% faster than row by row on one thread, a tie on a chain on
# two, 12% slower in a two-thread decode)
CHAINS = {"one token": (1, 64), "batch": (128, 2)}  # tokens, products in the chain
# the tile's tokens tried per family of the packed GEMM (lc_set_tile_tokens), the default first, and
# the type timed for it (the default model's, and Q4_K_M's)
TILE_TOKENS = {"32-block types": (GGMLType.Q4_1, (2, 1)), "K-quants": (GGMLType.Q4_K, (4, 2))}


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
    return {"gemv": lib.LC_ONE_TOKEN_GEMV, "gemv, prefetch farther": lib.LC_ONE_TOKEN_GEMV_FAR_PREFETCH,
            "gemv, hardware prefetch": lib.LC_ONE_TOKEN_GEMV_HARDWARE_PREFETCH,
            "row by row": lib.LC_ONE_TOKEN_ROW_BY_ROW}


def mul_mat_chunks(lib, ffi, library_path: Path) -> dict[str, dict]:
    """Chunks per thread for one-token and batch products ("one token", "batch": the count and each
    candidate's best milliseconds), timed now where the cache beside ``library_path`` lacks them;
    applied to ``lib``."""
    chunks = _cached(library_path, "mul_mat chunks per thread", lambda: _time_chunks(lib, ffi))
    lib.lc_set_mul_mat_chunks(chunks["one token"]["chunks"], chunks["batch"]["chunks"])
    return chunks


def tile_tokens(lib, ffi, library_path: Path) -> dict[str, dict]:
    """Per family of ``TILE_TOKENS`` the tokens a packed GEMM tile takes ("tokens") and each
    candidate's best milliseconds, timed now where the cache beside ``library_path`` lacks them;
    applied to ``lib``."""
    tiles = _cached(library_path, "tile tokens", lambda: _time_tiles(lib, ffi))
    lib.lc_set_tile_tokens(*(tiles[family]["tokens"] for family in TILE_TOKENS))
    return tiles


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


class _Chain:
    """A program of ``n_products`` MUL_MATs of ``weight_type`` on ``pool``, each ``CHAIN_ROWS`` rows of
    ``WIDTH`` values times ``tokens`` activation rows, with a barrier after each: a model's products
    for timing. Each product has its own copy of one matrix quantized from random values (a copy
    apiece, so the chain streams as many bytes as a model's)."""

    def __init__(self, lib, ffi, pool, threads: int, weight_type: GGMLType, tokens: int, n_products: int) -> None:
        block, type_size = GGML_QUANT_SIZES[weight_type]
        row_bytes = WIDTH // block * type_size
        matrix_bytes = CHAIN_ROWS * row_bytes
        rng = np.random.default_rng(0)
        # bound to names: ffi.cast's pointer does not keep from_buffer's array alive
        values = rng.standard_normal(CHAIN_ROWS * WIDTH).astype(np.float32)
        self.weights = aligned_bytes(n_products * matrix_bytes)
        lib.lc_quantize_row(int(weight_type), ffi.cast("float *", ffi.from_buffer(values)),
                            ffi.from_buffer(self.weights), CHAIN_ROWS * WIDTH)
        self.weights.reshape(n_products, matrix_bytes)[1:] = self.weights[:matrix_bytes]
        x_type = lib.lc_traits[int(weight_type)].vec_dot_type
        x_block, x_size = GGML_QUANT_SIZES[GGMLType(x_type)]
        x_bytes = WIDTH // x_block * x_size
        self.activations = aligned_bytes(tokens * x_bytes)
        lib.lc_quantize_row(x_type, ffi.cast("float *", ffi.from_buffer(values)), ffi.from_buffer(self.activations),
                            tokens * WIDTH)
        self.out = aligned_array((tokens, CHAIN_ROWS), np.float32)
        # each thread's scratch as the lowering sizes it: the packed GEMM's unpacked block of rows
        packed_floats = -(-lib.lc_packed_bytes(int(weight_type), WIDTH) // 4)
        floats = -(-(packed_floats + ALIGN) // 16) * 16
        self.scratch = aligned_array((threads * floats,), np.float32)
        self.nodes = ffi.new("lc_node[]", n_products)
        for i, node in enumerate(self.nodes):
            node.op, node.type = lib.LC_OP_MUL_MAT, int(weight_type)
            node.src[0] = ffi.from_buffer(self.weights[i * matrix_bytes:])
            node.src[1] = ffi.from_buffer(self.activations)
            node.dst = ffi.from_buffer(self.out)
            node.ne[0], node.ne[1], node.ne[2], node.ne[3] = WIDTH, tokens, CHAIN_ROWS, x_bytes
            node.row_bytes, node.run, node.barrier_after = row_bytes, lib.LC_RUN_ALL, 1
        self.program = ffi.new("lc_program *", {"nodes": self.nodes, "n_nodes": n_products, "pool": pool,
                                                "scratch": ffi.cast("float *", ffi.from_buffer(self.scratch)),
                                                "scratch_floats": floats})
        self.rows = n_products * CHAIN_ROWS


def _timed_pool(lib, ffi):
    """A pool of as many threads as the backend's default, and that count"""
    threads = isa.physical_cores()
    return ffi.gc(lib.lc_pool_new(threads), lib.lc_pool_free), threads


def _time_type(lib, ffi, weight_type: GGMLType) -> dict:
    """Each one-token path of ``weight_type`` timed on a chain of its products twice the largest
    cache's size, in rounds; the path by ``choice`` and each path's best nanoseconds per row."""
    pool, threads = _timed_pool(lib, ffi)
    block, type_size = GGML_QUANT_SIZES[weight_type]
    matrix_bytes = CHAIN_ROWS * (WIDTH // block * type_size)
    chain = _Chain(lib, ffi, pool, threads, weight_type, 1, -(-2 * _largest_cache_bytes() // matrix_bytes))
    codes = _path_codes(lib)
    settings = {path: lambda code=code: lib.lc_set_one_token_path(int(weight_type), code) for path, code in codes.items()}
    rounds = [_best_runs(lib, chain.program, settings) for _ in range(ROUNDS)]
    return {"path": choice(rounds, "gemv"),
            **{f"{path} ns/row": round(min(r[path] for r in rounds) * 1e9 / chain.rows, 2) for path in codes}}


def _time_chunks(lib, ffi) -> dict[str, dict]:
    """Each chain of ``CHAINS`` run with every count of ``CHUNK_COUNTS``, in rounds, on as
    many threads as the backend's default; per chain the fastest count by its best run, the
    default unless another beats it by more than the noise margin."""
    pool, threads = _timed_pool(lib, ffi)
    settings = {count: lambda count=count: lib.lc_set_mul_mat_chunks(count, count) for count in CHUNK_COUNTS}
    chosen = {}
    for name, (tokens, n_products) in CHAINS.items():
        chain = _Chain(lib, ffi, pool, threads, GGMLType.Q4_1, tokens, n_products)  # the default model's type
        rounds = [_best_runs(lib, chain.program, settings) for _ in range(ROUNDS)]
        best = {c: min(r[c] for r in rounds) for c in CHUNK_COUNTS}
        chosen[name] = {"chunks": choice(rounds, DEFAULT_CHUNKS),
                        **{f"{c} ms": round(s * 1e3, 3) for c, s in best.items()}}
    return chosen


def _time_tiles(lib, ffi) -> dict[str, dict]:
    """Each family's batch chain (``CHAINS``) run with each of its tile's token counts, in rounds;
    its default unless another beats it by more than the noise margin (a build without the packed
    GEMM keeps the defaults, untimed)."""
    defaults = {family: options[0] for family, (_, options) in TILE_TOKENS.items()}
    if not lib.lc_packed_bytes(int(GGMLType.Q4_1), WIDTH):
        return {family: {"tokens": tokens} for family, tokens in defaults.items()}
    pool, threads = _timed_pool(lib, ffi)
    tokens, n_products = CHAINS["batch"]
    chosen = {}
    for family, (weight_type, options) in TILE_TOKENS.items():
        def apply(count: int, family: str = family) -> None:
            lib.lc_set_tile_tokens(*(count if other == family else defaults[other] for other in TILE_TOKENS))
        chain = _Chain(lib, ffi, pool, threads, weight_type, tokens, n_products)
        rounds = [_best_runs(lib, chain.program, {n: lambda n=n: apply(n) for n in options}) for _ in range(ROUNDS)]
        chosen[family] = {"tokens": choice(rounds, options[0]),
                          **{f"{n} ms": round(min(r[n] for r in rounds) * 1e3, 3) for n in options}}
    lib.lc_set_tile_tokens(*defaults.values())
    return chosen


def _best_runs(lib, program, settings: dict[object, Callable[[], None]]) -> dict[object, float]:
    """The best of ``REPEATS`` runs of ``program`` in seconds under each of ``settings`` (a function
    that applies it), the settings taking turns so that a busy spell slows each alike."""
    best = dict.fromkeys(settings, float("inf"))
    for _ in range(REPEATS):
        for key, apply in settings.items():
            apply()
            start = time.perf_counter()
            lib.lc_graph_run(program, 0)
            best[key] = min(best[key], time.perf_counter() - start)
    return best
