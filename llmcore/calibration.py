"""Backend calibration for the cost model of ``llmcore plan``: what one backend, on this machine,
costs per run, per op and per byte or operation of a matrix product.

Each quantity comes from a small timed graph on a fresh instance of the backend (so nothing stays
allocated on the one the model uses): a decode-shaped (1 token) ``mul_mat`` over a weight larger
than the CPU caches gives the bytes/s at which weights of that type stream; a prompt-shaped (64
token) one gives the operations/s; a chain of elementwise ops gives the fixed cost of one op and of
one executable run. Results are cached in ``$LLMCORE_CACHE/calibration.json`` under the backend's
name, device, threads and llmcore version, so the cost is paid once (a few hundred ms).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from llmcore import __version__
from llmcore.backends.base import Backend, Subgraph, WeightData
from llmcore.backends.registry import availability
from llmcore.gguf import GGMLType
from llmcore.gguf.types import tensor_bytes
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import F32, Op
from llmcore.hub.cache import cache_dir

CACHE_NAME = "calibration.json"
DECODE_WEIGHT_BYTES = 64 << 20  # twice a 32 MiB last-level cache: decode streams weights from RAM
PROMPT_WEIGHT_ELEMENTS = 4096 * 1024  # a few ms of work: long enough to time
PROMPT_TOKENS = 64
WIDTH = 1024  # columns of the calibration matrices (a multiple of every block size)
CHAIN_OPS = 512  # long enough (tens of ms on a busy machine) to see what a model step sees
HEADS, HEAD_DIM = 8, 64  # attention of a small model
REPEATS = 7


@dataclass
class MatMulSpeed:
    """A backend's speed on ``mul_mat`` with weights of one type."""

    bytes_per_s: float  # weight bytes streamed per second by a 1-token product
    ops_per_s: float  # multiply-adds x 2 per second of a 64-token product


@dataclass
class BackendSpeed:
    """What one backend costs here: per executable run, per op, per matrix product by weight type
    and per attention by cache type."""

    run_s: float  # fixed cost of running one split (dispatch, transfers, synchronisation)
    op_s: float  # fixed cost of one op inside a run
    mul_mat: dict[str, MatMulSpeed] = field(default_factory=dict)  # by GGMLType name
    attention_ops_per_s: dict[str, float] = field(default_factory=dict)  # by cache type ("f16", "f32")

    def mul_mat_s(self, weight_type: GGMLType, weight_bytes: int, n_elements: int, n_tokens: int) -> float:
        """Seconds of one product of a weight with ``n_tokens`` rows: the slower of streaming its
        bytes and doing its operations (a roofline)."""
        speed = self.mul_mat[weight_type.name]
        return max(weight_bytes / speed.bytes_per_s, 2 * n_elements * n_tokens / speed.ops_per_s)

    def attention_s(self, cache_type: str, n_tokens: int, n_kv: int, n_head: int, head_dim: int) -> float:
        """Seconds of the scores and the weighted sum of ``n_tokens`` queries over ``n_kv`` cells."""
        return 4 * n_tokens * n_kv * n_head * head_dim / self.attention_ops_per_s[cache_type]


def calibrate(backend: Backend, weight_types: set[GGMLType], cache_types: set[str]) -> BackendSpeed:
    """The ``BackendSpeed`` of ``backend``'s class and threads for products with ``weight_types``
    and attention over ``cache_types``, measured now where the cache lacks it (on a fresh
    instance), else read from the cache."""
    key = _cache_key(backend)
    store = _read_cache()
    entry = store.get(key)
    speed = None
    if entry:
        speed = BackendSpeed(entry["run_s"], entry["op_s"], {k: MatMulSpeed(**v) for k, v in entry["mul_mat"].items()},
                             entry.get("attention_ops_per_s", {}))
    missing = {t for t in weight_types if speed is None or t.name not in speed.mul_mat}
    missing_attention = {t for t in cache_types if speed is None or t not in speed.attention_ops_per_s}
    if speed is not None and not missing and not missing_attention:
        return speed
    probe = type(backend)(n_threads=backend.n_threads)
    if speed is None:
        speed = BackendSpeed(*_overheads(probe))
    for weight_type in sorted(missing, key=lambda t: t.name):
        speed.mul_mat[weight_type.name] = _mul_mat_speed(probe, weight_type)
    for cache_type in sorted(missing_attention):
        speed.attention_ops_per_s[cache_type] = _attention_speed(probe, cache_type)
    store[key] = asdict(speed)
    _write_cache(store)
    return speed


def _cache_key(backend: Backend) -> str:
    devices = availability(backend.name).devices
    device = devices[0].name if devices else "default"
    return f"{backend.name}|{device}|threads={backend.n_threads}|llmcore={__version__}"


def _cache_path() -> Path:
    return cache_dir() / CACHE_NAME


def _read_cache() -> dict:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again


def _write_cache(store: dict) -> None:
    path = _cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(store, indent=1, sort_keys=True))
    tmp.replace(path)


def _timed(backend: Backend, build, weights: dict[str, np.ndarray], feeds: dict[str, np.ndarray],
           n_kv: int = 0) -> float:
    """Median seconds of one run of the graph ``build(g)`` returns, compiled on ``backend``."""
    g = GraphBuilder(1, 1)
    out = build(g)
    graph = g.build({"out": out})
    inputs = [n for n in graph.nodes if n.op is Op.INPUT]
    backend.load_weights([WeightData(n.name, n.dtype, n.shape, weights[n.name]) for n in graph.weights])
    executable = backend.compile(Subgraph([n for n in graph.nodes if not n.is_leaf], inputs, [out], graph.weights,
                                          graph.caches))
    by_name = {n.name: n.id for n in inputs}
    fed = {by_name[name]: value for name, value in feeds.items()}
    with np.errstate(all="ignore"):  # random weights may overflow in float backends; only time matters
        return _median_run(executable, fed, n_kv)


def _median_run(executable, fed, n_kv: int) -> float:
    """The median of REPEATS runs: typical, as ``llmcore bench`` reports, on a machine that may be shared."""
    executable.run(fed, n_kv)  # warm-up: first-touch of buffers, pipeline creation
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        executable.run(fed, n_kv)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _overheads(backend: Backend) -> tuple[float, float]:
    """(seconds per run, seconds per op) from a 1-op and a (1 + CHAIN_OPS)-op elementwise chain."""
    x = np.ones((1, WIDTH), np.float32)

    def chain(n_ops: int):
        def build(g: GraphBuilder):
            node = g.input("x", (1, WIDTH), F32)
            for _ in range(n_ops):
                node = g.add(node, node)
            return node
        return build

    one = _timed(backend, chain(1), {}, {"x": x})
    many = _timed(backend, chain(1 + CHAIN_OPS), {}, {"x": x})
    op_s = max((many - one) / CHAIN_OPS, 0.0)
    return max(one - op_s, 0.0), op_s


def _mul_mat_speed(backend: Backend, weight_type: GGMLType) -> MatMulSpeed:
    rng = np.random.default_rng(0)
    row_bytes = tensor_bytes(weight_type, (1, WIDTH))
    decode_rows = max(DECODE_WEIGHT_BYTES // row_bytes, 1)
    prompt_rows = PROMPT_WEIGHT_ELEMENTS // WIDTH

    def product(rows: int, n_tokens: int, name: str) -> tuple[float, int]:
        raw = _random_weight(rng, weight_type, rows)
        seconds = _timed(backend, lambda g: g.mul_mat(g.weight(name, (rows, WIDTH), weight_type),
                                                      g.input("x", (n_tokens, WIDTH), F32)),
                         {name: raw}, {"x": rng.standard_normal((n_tokens, WIDTH)).astype(np.float32)})
        return seconds, raw.nbytes

    decode_s, decode_bytes = product(decode_rows, 1, f"calibration.decode.{weight_type.name}")
    prompt_s, _ = product(prompt_rows, PROMPT_TOKENS, f"calibration.prompt.{weight_type.name}")
    return MatMulSpeed(decode_bytes / decode_s, 2 * prompt_rows * WIDTH * PROMPT_TOKENS / prompt_s)


def _attention_speed(backend: Backend, cache_type: str) -> float:
    """Operations/s of prompt-shaped attention: PROMPT_TOKENS queries over as many cells."""
    rng = np.random.default_rng(0)
    n, width = PROMPT_TOKENS, HEADS * HEAD_DIM

    def build(g: GraphBuilder):
        k = g.cache("calibration.k", (n, width), cache_type)
        v = g.cache("calibration.v", (n, width), cache_type)
        q = g.reshape(g.input("q", (n, width), F32), (n, HEADS, HEAD_DIM))
        return g.attention(q, k, v, g.input("mask", (n, n), F32), 1 / HEAD_DIM ** 0.5)

    mask = np.triu(np.full((n, n), -np.inf, np.float32), 1)
    seconds = _timed(backend, build, {}, {"q": rng.standard_normal((n, width)).astype(np.float32), "mask": mask}, n)
    return 4 * n * n * HEADS * HEAD_DIM / seconds


def _random_weight(rng: np.random.Generator, weight_type: GGMLType, rows: int) -> np.ndarray:
    """A weight of ``rows`` x WIDTH in the raw layout ``WeightData`` uses; values are small
    normals for float types and random bytes (with small block scales) for quantized ones."""
    if weight_type in (GGMLType.F32, GGMLType.F16):
        return (0.01 * rng.standard_normal((rows, WIDTH))).astype(np.float32 if weight_type == GGMLType.F32 else np.float16)
    raw = rng.integers(0, 256, (rows, tensor_bytes(weight_type, (1, WIDTH))), dtype=np.uint8)
    # 32-value block types start each block with a float16 scale: cap its high byte so that the
    # scales stay finite (timing does not depend on the values, but overflow warnings would be noise)
    raw[:, 1::raw.shape[1] // (WIDTH // 32)] &= 0x3B
    return raw
