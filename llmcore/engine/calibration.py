"""Backend calibration for the cost model of ``llmcore plan``: what one backend, on this machine,
costs per run, per op and per byte or operation of a matrix product.

Each quantity comes from a small timed graph on a fresh instance of the backend (so nothing stays
allocated on the one the model uses): a chain of elementwise ops gives the fixed cost of one op and
of one executable run; a decode-shaped (1 token) chain of square ``mul_mat``s, each reading the
last one's output, over weights larger than the CPU caches together gives the bytes/s at which a
model's weights of that type stream, the cost each product adds (its dispatch, the threads waiting
for each other) included; a prompt-shaped one at 64 and 256 tokens (64 only on a slow device) a
token's share of the operations/s and the setup a product costs whatever its tokens (a GEMM's
unpacking of the weights): a short batch's product is then the cheaper of that GEMM and its tokens
streamed one by one, as a backend's kernels choose.
Both are measured per weight type and row length, at the model's own row lengths: a kernel's bytes/s
depends on how long its rows are (on a Zen 4 VM, Q5_0 rows of 576 values streamed at half the bytes/s
of rows of 1024 on 2 threads, Q4_1's at twice on 1), and the shorter the rows, the smaller a model's
products and the more what each costs besides its bytes weighs. Causal attention, with the model's heads
(how many queries share a key and value head changes what a cell costs), at two prompt sizes gives
its cost per query and per (query, cell) pair; one query over two windows, a decode step's.
Only the weight types, row lengths and cache types a plan needs are measured. Each time is the best
of several runs, so that work elsewhere on the machine while it calibrates does not make the plan
expect a slow machine for good. Results are cached in ``$LLMCORE_CACHE/calibration.json`` under the
backend's name, device, threads and build (``Backend.build_id``: new kernels are timed anew), the
host CPU's model and llmcore version, so the cost (a second or two per backend; a model with other
row lengths adds theirs) is paid once. A run that measures a prompt or decode speed more than
``FAST_MISS_FACTOR`` above the plan's shows a calibration timed while other work slowed the machine
(best of a few runs cannot see past load that lasts them all): the next plan measures again
(:func:`remeasure`) and keeps the best of both of the figures that predict what missed (a prompt's
operations/s and attention per query, or decode's bytes/s and attention per cell), so that
calibrations converge on the machine's quiet speed while the other figures, which the run agreed
with, stay (a best of two calibrations is a luckier figure than a run's median reaches). A run more
than ``MISS_FACTOR`` below it drops them (:func:`forget`): the machine is not the one they describe
any more (same CPU model, fewer cores granted or slower memory), and the next plan measures afresh.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from llmcore.version import __version__
from llmcore.graph.backend import Backend, Executable, Subgraph, WeightData
from llmcore.engine.registry import availability, best_host_backend
from llmcore.gguf import GGMLType
from llmcore.gguf.types import tensor_bytes
from llmcore.gguf.writer import GGUFWriter
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import F32, Op
from llmcore.host import host_cpu
from llmcore.paths import cache_dir

CACHE_NAME = "calibration.json"
# four times a 32 MiB last-level cache: decode streams a model's weights from RAM, and a chain of
# twice its size still found part of itself there (Zen 4, 1 thread: Q8_0 23-25 GB/s over 64 MiB,
# 18-21 GB/s over 128 or 256 MiB)
DECODE_WEIGHT_BYTES = 128 << 20
PROMPT_WEIGHT_ELEMENTS = 4096 * 1024  # a few ms of work: long enough to time
PROMPT_TOKENS = (64, 256)  # the small size, then half llama-bench's pp512 step (GEMMs reach their speed
PROMPT_BUDGET_S = 0.05  # by then, not at 64) where its run stays within this budget (slow devices: 64)
METHOD = 5  # bumped when what is measured changes: older cached figures are not comparable
WIDTH = 1024  # row length of the elementwise chain
MAX_ROW_LENGTH = 4096  # longer rows are timed at this length (a multiple of every block size), where a
# row's fixed costs are spread thin; a square product of it is 64 MiB of float32 at most
MAX_DECODE_PRODUCTS = 1024  # short rows: a chain this long stays quick to build (and its weights, if
# they then fit the caches, are a model's that fit them too)
CHAIN_OPS = 512  # long enough (tens of ms on a busy machine) to see what a model step sees
ATTENTION_TOKENS = (32, 96, 256)  # the small size, then the larger ones to choose from
DECODE_WINDOWS = (32, 256)  # cells one query reads: under the 512 where a CPU splits them among threads
ATTENTION_BUDGET_S = 0.02  # longest run of the larger size
MIN_RUNS, MIN_WALL_S = 5, 0.05
ENGINE_STEPS, ENGINE_PASSES = 16, 3  # one-token steps of a pass; passes, the best one counting
FLUSH_BYTES = 64 << 20  # read after each step's run: twice a 32 MiB last-level cache
ENGINE_CONTEXT = 4096  # cells of the context that times them (llmcore's default)
MISS_FACTOR = 2.0  # a measured speed this far below the plan's: a calibration of another machine
FAST_MISS_FACTOR = 1.3  # this far above it: a calibration slowed by other work (the plan's aim is 30%)
REMEASURE = "remeasure"  # a cache entry's flag: the parts (PROMPT, DECODE) to measure again, keeping the best
PROMPT, DECODE = "prompt", "decode"


@dataclass
class MatMulSpeed:
    """A backend's speed on ``mul_mat`` with weights of one type."""

    bytes_per_s: float  # weight bytes streamed per second by a 1-token product
    ops_per_s: float  # multiply-adds x 2 per second of a prompt-shaped product, each token's share (PROMPT_TOKENS)
    setup_s_per_byte: float = 0.0  # a prompt-shaped product's cost whatever its tokens, per weight byte
    # (the weights' unpacking for a GEMM): the two prompt sizes' times fitted as setup + tokens x a token's


@dataclass
class AttentionSpeed:
    """A backend's attention cost, with one layout of heads and cache types, per query row and per
    (query, cell) pair of the attention window (masked or not) of a prompt, and per step and per
    cell read of one token's (the kernels differ: a prompt's tiles of queries, a single query's pass
    over the cells)."""

    query_s: float
    cell_s: float
    decode_s: float = 0.0
    decode_cell_s: float = 0.0


@dataclass
class BackendSpeed:
    """What one backend costs here: per executable run, per op, per matrix product by weight type
    and per attention by cache type."""

    run_s: float  # fixed cost of running one split (dispatch, transfers, synchronisation)
    op_s: float  # fixed cost of one op inside a run
    mul_mat: dict[str, MatMulSpeed] = field(default_factory=dict)  # by mul_mat_key ("Q5_0/576")
    attention: dict[str, AttentionSpeed] = field(default_factory=dict)  # by plan.attention_key ("f16/f16/fa 9x3x64")

    def mul_mat_s(self, weight_type: GGMLType, row_length: int, weight_bytes: int, n_elements: int,
                  n_tokens: int) -> float:
        """Seconds of one product of a weight with rows of ``row_length`` values and ``n_tokens``
        rows of activations: the slower of streaming its bytes and doing its operations (a roofline)."""
        speed = self.mul_mat[mul_mat_key(weight_type, row_length)]
        streamed = weight_bytes / speed.bytes_per_s
        if n_tokens == 1:
            return streamed
        # a backend takes a short batch's tokens one by one where that beats its GEMM's setup (never
        # faster than the GEMM's own operations)
        operations = 2 * n_elements * n_tokens / speed.ops_per_s
        return max(streamed, min(weight_bytes * speed.setup_s_per_byte + operations, max(n_tokens * streamed, operations)))

    def attention_s(self, key: str, n_queries: int, n_query_cells: float) -> float:
        """Seconds of attention (``key``: its plan.attention_key) for ``n_queries`` query rows
        reading ``n_query_cells`` (query, cell) pairs in all."""
        speed = self.attention[key]
        return n_queries * speed.query_s + n_query_cells * speed.cell_s

    def decode_attention_s(self, key: str, n_cells: float) -> float:
        """Seconds of one token's attention over a window of ``n_cells`` cells."""
        speed = self.attention[key]
        return speed.decode_s + n_cells * speed.decode_cell_s


def mul_mat_key(weight_type: GGMLType, row_length: int) -> str:
    """The calibration that products with ``weight_type`` weights of rows ``row_length`` long take:
    "Q5_0/576"."""
    return f"{weight_type.name}/{_timed_row_length(row_length)}"


def _timed_row_length(row_length: int) -> int:
    return min(row_length, MAX_ROW_LENGTH)


def calibrate(backend: Backend, products: set[tuple[GGMLType, int]], attentions: set[str]) -> BackendSpeed:
    """The ``BackendSpeed`` of ``backend``'s class and threads for ``products`` (weight type, row
    length) and ``attentions`` (``plan.attention_key``), measured now where the cache lacks them (on
    a fresh instance), else read from the cache."""
    key = _cache_key(backend)
    store = _read_cache()
    entry = store.get(key)
    cached = None
    if entry:
        cached = BackendSpeed(entry["run_s"], entry["op_s"], {k: MatMulSpeed(**v) for k, v in entry["mul_mat"].items()},
                              {k: AttentionSpeed(**v) for k, v in entry["attention"].items()})
    again = set(entry.get(REMEASURE, ())) if entry else set()
    speed = None if again else cached
    missing = {(t, _timed_row_length(n)) for t, n in products
               if speed is None or mul_mat_key(t, n) not in speed.mul_mat}
    missing_attention = {k for k in attentions if speed is None or k not in speed.attention}
    if speed is not None and not missing and not missing_attention:
        return speed
    probe = type(backend)(n_threads=backend.n_threads)
    if speed is None:
        speed = BackendSpeed(*_overheads(probe))
    for weight_type, row_length in sorted(missing, key=lambda p: (p[0].name, p[1])):
        speed.mul_mat[mul_mat_key(weight_type, row_length)] = _mul_mat_speed(probe, weight_type, row_length,
                                                                            speed.run_s + speed.op_s)
    for attention in sorted(missing_attention):
        speed.attention[attention] = _attention_speed(probe, attention, speed.run_s + speed.op_s)
    if again:
        speed = _best_of(cached, speed, again)
    store[key] = asdict(speed)
    _write_cache(store)
    return speed


def _best_of(old: BackendSpeed, new: BackendSpeed, parts: set[str]) -> BackendSpeed:
    """Two calibrations of one backend merged: the figures that predict ``parts`` (PROMPT,
    DECODE) at their best, the faster speed, the smaller cost (load elsewhere on the machine only
    ever slows a timed run down); the others as ``old`` has them (and ``new``'s where ``old`` lacks
    them)."""
    prompt, decode = PROMPT in parts, DECODE in parts
    mul_mat = {**new.mul_mat, **old.mul_mat}
    for k in old.mul_mat.keys() & new.mul_mat.keys():
        o, n = old.mul_mat[k], new.mul_mat[k]
        mul_mat[k] = MatMulSpeed(max(o.bytes_per_s, n.bytes_per_s) if decode else o.bytes_per_s,
                                 max(o.ops_per_s, n.ops_per_s) if prompt else o.ops_per_s,
                                 min(o.setup_s_per_byte, n.setup_s_per_byte) if prompt else o.setup_s_per_byte)
    attention = {**new.attention, **old.attention}
    for k in old.attention.keys() & new.attention.keys():
        o, n = old.attention[k], new.attention[k]
        attention[k] = AttentionSpeed(min(o.query_s, n.query_s) if prompt else o.query_s,
                                      min(o.cell_s, n.cell_s) if prompt else o.cell_s,
                                      min(o.decode_s, n.decode_s) if decode else o.decode_s,
                                      min(o.decode_cell_s, n.decode_cell_s) if decode else o.decode_cell_s)
    return BackendSpeed(min(old.run_s, new.run_s), min(old.op_s, new.op_s), mul_mat, attention)


def engine_step_s() -> float:
    """Seconds a context spends on a one-token step besides its backends' runs (claiming the cell,
    making the mask and inputs, handing the logits out: Python, about 0.2-0.3 ms on a Zen 4 VM, a
    tenth of a small model's token), measured now if this host's cache lacks it."""
    store = _read_cache()
    entry = store.get(_engine_key())
    if entry is None or entry.get(REMEASURE):
        step_s = _engine_step_s()
        store[_engine_key()] = {"step_s": step_s if entry is None else min(step_s, entry["step_s"])}
        _write_cache(store)
    return store[_engine_key()]["step_s"]


def forget(backend: Backend) -> None:
    """Drop the cached calibration of ``backend``'s class and threads on this machine: the next
    :func:`calibrate` measures it afresh."""
    store = _read_cache()
    if store.pop(_cache_key(backend), None) is not None:
        _write_cache(store)


def remeasure(backend: Backend, parts: Collection[str]) -> None:
    """Have the next :func:`calibrate` of ``backend`` (and :func:`engine_step_s`) measure again and
    keep the best of the cached figures and the new ones that predict ``parts`` (PROMPT, DECODE)."""
    store = _read_cache()
    for key in (_cache_key(backend), _engine_key()):
        if key in store:
            store[key][REMEASURE] = sorted(set(store[key].get(REMEASURE, ())) | set(parts))
    _write_cache(store)


def is_cached(backend: Backend) -> bool:
    """Whether :func:`calibrate` has measured ``backend``'s class and threads on this machine."""
    return _cache_key(backend) in _read_cache()


def _engine_key() -> str:
    return f"engine|cpu={host_cpu()}|method={METHOD}|llmcore={__version__}"


def _cache_key(backend: Backend) -> str:
    devices = availability(backend.name).devices
    device = devices[0].name if devices else "default"
    build_id = backend.build_id()
    build = f"|build={build_id}" if build_id else ""
    return (f"{backend.name}|{device}|threads={backend.n_threads}{build}|cpu={host_cpu()}|method={METHOD}"
            f"|llmcore={__version__}")


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
    """Best seconds of one run of the graph ``build(g)`` returns, compiled on ``backend``."""
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
        return _best_run(executable, fed, n_kv)


def _best_run(executable, fed, n_kv: int) -> float:
    """Fewest seconds of one run over at least MIN_RUNS runs and MIN_WALL_S: a run that other work
    on the machine slowed down says nothing of the machine (``llmcore bench`` likewise takes
    medians of repetitions)."""
    executable.run(fed, n_kv)  # warm-up: first-touch of buffers, pipeline creation
    best, runs, start = math.inf, 0, time.perf_counter()
    while runs < MIN_RUNS or time.perf_counter() - start < MIN_WALL_S:
        t0 = time.perf_counter()
        executable.run(fed, n_kv)
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


class _ModelSizedRuns(Executable):
    """An executable whose every run then reads ``flush``, as a model's step streams more weights
    than the caches hold (the engine's work after it finds them cold: on a Zen 4 VM 0.25-0.35 ms a
    step after SmolLM2's, 0.05 ms with the caches warm), adding the seconds of both to ``seconds``."""

    def __init__(self, executable: Executable, flush: np.ndarray) -> None:
        self.executable = executable
        self.flush = flush
        self.seconds = 0.0

    def run(self, inputs, n_kv: int) -> list[np.ndarray]:
        start = time.perf_counter()
        outputs = self.executable.run(inputs, n_kv)
        np.bitwise_or.reduce(self.flush)
        self.seconds += time.perf_counter() - start
        return outputs


def _engine_step_s() -> float:
    """The best pass's seconds per one-token step of a context outside its split's runs, on a
    one-layer llama written here and run by the host backend on one thread."""
    from llmcore.engine.batch import Batch
    from llmcore.engine.context import Context
    from llmcore.engine.model import Model
    from llmcore.graph.placement import LayerPlacement

    with tempfile.TemporaryDirectory() as folder:
        model = Model(_write_engine_model(Path(folder) / "engine.gguf"))
        try:
            backend = best_host_backend()(n_threads=1)
            context = Context(model, LayerPlacement.single(backend, model.hparams.n_layer), ENGINE_CONTEXT)
            context.decode(Batch.for_sequence([1], 0))  # compiles the one-token graph
            splits = context.compiled(1, 1).splits
            flush = np.ones(FLUSH_BYTES // 8, np.uint64)
            timed = [_ModelSizedRuns(split.executable, flush) for split in splits]
            for split, executable in zip(splits, timed):
                split.executable = executable
            best = math.inf
            for _ in range(ENGINE_PASSES):
                context.cells.clear()
                runs_before = sum(t.seconds for t in timed)
                start = time.perf_counter()
                for pos in range(ENGINE_STEPS):
                    context.decode(Batch.for_sequence([1], pos))
                runs = sum(t.seconds for t in timed) - runs_before
                best = min(best, (time.perf_counter() - start - runs) / ENGINE_STEPS)
        finally:
            model.reader.close()
    return max(best, 0.0)


def _write_engine_model(path: Path, n_embd: int = 64, n_vocab: int = 32) -> Path:
    """A one-layer llama of zeros (what it computes does not matter, only what the engine does)."""
    writer = GGUFWriter(path, arch="llama")
    for key, value in {"context_length": ENGINE_CONTEXT, "embedding_length": n_embd, "block_count": 1,
                       "feed_forward_length": n_embd, "attention.head_count": 1,
                       "attention.layer_norm_rms_epsilon": 1e-5}.items():
        writer.add_metadata(f"llama.{key}", value)
    writer.add_metadata("tokenizer.ggml.model", "llama")
    writer.add_metadata("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(n_vocab - 3)])
    shapes: dict[str, Sequence[int]] = {"token_embd.weight": (n_vocab, n_embd), "output_norm.weight": (n_embd,)}
    for name in ("attn_norm", "ffn_norm"):
        shapes[f"blk.0.{name}.weight"] = (n_embd,)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
        shapes[f"blk.0.{name}.weight"] = (n_embd, n_embd)
    for name, shape in shapes.items():
        writer.add_tensor(name, np.zeros(shape, np.float32))
    writer.write()
    return path


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


def _mul_mat_speed(backend: Backend, weight_type: GGMLType, row_length: int, fixed_s: float) -> MatMulSpeed:
    """Bytes/s of a decode-shaped product and operations/s of a prompt-shaped one, with rows of
    ``row_length`` values, net of the ``fixed_s`` every one-op run costs (the cost model adds that
    separately)."""
    rng = np.random.default_rng(0)
    square_bytes = tensor_bytes(weight_type, (row_length, row_length))
    n_decode = min(max(DECODE_WEIGHT_BYTES // square_bytes, 1), MAX_DECODE_PRODUCTS)
    prompt_rows = max(PROMPT_WEIGHT_ELEMENTS // row_length, 1)
    x = lambda n_tokens: {"x": rng.standard_normal((n_tokens, row_length)).astype(np.float32)}
    decode_name = f"calibration.decode.{weight_type.name}.{row_length}"

    def decode_chain(g: GraphBuilder):
        node = g.input("x", (1, row_length), F32)
        for i in range(n_decode):
            node = g.mul_mat(g.weight(f"{decode_name}.{i}", (row_length, row_length), weight_type), node)
        return node

    chain = _chain_weights(rng, weight_type, row_length, n_decode)
    decode_weights = {f"{decode_name}.{i}": weight for i, weight in enumerate(chain)}
    # on an instance of its own, whose weights go when it does (backends copy them: a model's
    # worth of chains held at once would be hundreds of MiB)
    decode_s = max(_timed(type(backend)(n_threads=backend.n_threads), decode_chain, decode_weights, x(1)) - fixed_s,
                   1e-9)
    name = f"calibration.prompt.{weight_type.name}.{row_length}"
    prompt_weight = {name: _random_weight(rng, weight_type, prompt_rows, row_length)}

    def prompt_s(n_tokens: int) -> float:
        return max(_timed(backend, lambda g: g.mul_mat(g.weight(name, (prompt_rows, row_length), weight_type),
                                                       g.input("x", (n_tokens, row_length), F32)),
                          prompt_weight, x(n_tokens)) - fixed_s, 1e-9)

    ops = 2 * prompt_rows * row_length
    small, large = PROMPT_TOKENS
    small_s = prompt_s(small)
    prompt_ops, setup_s = ops * small / small_s, 0.0
    if ops * large / prompt_ops < PROMPT_BUDGET_S:
        large_s = prompt_s(large)
        token_s = (large_s - small_s) / (large - small)
        # setup + tokens x a token's cost, where the two times give a positive setup and slope
        if 0 < token_s and small * token_s < small_s:
            prompt_ops, setup_s = ops / token_s, small_s - small * token_s
        else:
            prompt_ops = ops * large / large_s
    weight_bytes = tensor_bytes(weight_type, (prompt_rows, row_length))
    return MatMulSpeed(n_decode * square_bytes / decode_s, prompt_ops, setup_s / weight_bytes)


def _attention_speed(backend: Backend, key: str, fixed_s: float) -> AttentionSpeed:
    """Prompt-shaped attention (n queries over n cells, causal mask, as a prompt from an empty
    cache) at two sizes: t = n x query_s + n^2 x cell_s; one query over two windows (DECODE_WINDOWS):
    t = decode_s + window x decode_cell_s. Counting all n^2 pairs, masked or not, keeps the fit
    right both for backends that skip masked cells and for those that do not.
    Times are net of the ``fixed_s`` of a one-op run. ``key`` names the cache types, flash
    attention and heads as ``plan.attention_key`` does ("f16 9x3x64", "q8_0/q8_0/fa 32x8x128")."""
    rng = np.random.default_rng(0)
    caches, heads = key.split(" ")
    n_head, n_head_kv, head_dim = (int(n) for n in heads.split("x"))
    parts = caches.split("/")
    type_k, type_v, flash = parts[0], parts[1] if len(parts) > 1 else parts[0], parts[-1] == "fa"

    def seconds(n: int, n_cells: int | None = None) -> float:
        """n queries over the last n of ``n_cells`` cells (default n), causally masked."""
        n_cells = n_cells or n

        def build(g: GraphBuilder):
            k = g.cache("calibration.k", (n_cells, n_head_kv * head_dim), type_k)
            v = g.cache("calibration.v", (n_cells, n_head_kv * head_dim), type_v)
            q = g.reshape(g.input("q", (n, n_head * head_dim), F32), (n, n_head, head_dim))
            return g.attention(q, k, v, g.input("mask", (n, n_cells), F32), 1 / head_dim ** 0.5, flash=flash)

        feeds = {"q": rng.standard_normal((n, n_head * head_dim)).astype(np.float32),
                 "mask": np.triu(np.full((n, n_cells), -np.inf, np.float32), n_cells - n + 1)}
        return max(_timed(type(backend)(n_threads=backend.n_threads), build, {}, feeds, n_cells) - fixed_s, 1e-9)

    # one token: t = decode_s + window x decode_cell_s
    few, many = DECODE_WINDOWS
    t_few, t_many = seconds(1, few), seconds(1, many)
    decode_cell_s = max((t_many - t_few) / (many - few), 0.0)
    decode_s = max(t_few - few * decode_cell_s, 0.0)
    small = ATTENTION_TOKENS[0]
    t_small = seconds(small)
    # the largest size whose run stays within budget (slow devices get a smaller one)
    fits = [n for n in ATTENTION_TOKENS[1:] if t_small * (n / small) ** 2 < ATTENTION_BUDGET_S]
    large = max(fits, default=ATTENTION_TOKENS[1])
    t_large = seconds(large)
    # solve t = n q + n^2 c at both sizes
    cell_s = max((t_large / large - t_small / small) / (large - small), 0.0)
    return AttentionSpeed(max(t_small / small - small * cell_s, 0.0), cell_s, decode_s, decode_cell_s)


def _chain_weights(rng: np.random.Generator, weight_type: GGMLType, row_length: int, n: int) -> list[np.ndarray]:
    """``n`` square weights of ``row_length``, each in memory of its own: one random matrix written
    ``n`` times (the kernels' speed does not depend on the values, and making them all random took
    longer than timing them), in a bytearray, so that a backend reading weights where they lie meets
    4 KiB pages as in a mapped model file (numpy asks huge pages for its own large arrays)."""
    one = _random_weight(rng, weight_type, row_length, row_length)
    chain = np.frombuffer(bytearray(n * one.nbytes), one.dtype).reshape(n, *one.shape)
    chain[:] = one
    return list(chain)


def _random_weight(rng: np.random.Generator, weight_type: GGMLType, rows: int, row_length: int) -> np.ndarray:
    """A weight of ``rows`` x ``row_length`` in the raw layout ``WeightData`` uses; values are normals that
    keep a product's outputs as large as its inputs (a chain of them never reaches denormals, which
    some CPUs compute slowly) for float types and random bytes (with small block scales) for
    quantized ones."""
    if weight_type in (GGMLType.F32, GGMLType.F16):
        return (row_length ** -0.5 * rng.standard_normal((rows, row_length))).astype(
            np.float32 if weight_type == GGMLType.F32 else np.float16)
    row_bytes = tensor_bytes(weight_type, (1, row_length))
    raw = np.frombuffer(bytearray(rng.bytes(rows * row_bytes)), np.uint8).reshape(rows, row_bytes)
    # 32-value block types start each block with a float16 scale: cap its high byte so that the
    # scales stay finite (timing does not depend on the values, but overflow warnings would be noise)
    raw[:, 1::raw.shape[1] // max(row_length // 32, 1)] &= 0x3B
    return raw
