"""The op cases of the conformance kit: single-op graphs over many shapes and types.

Each case is a graph of one op under test (its sources are graph inputs, weights or caches), built
with the same :class:`~llmcore.graph.builder.GraphBuilder` the models use, so the node a backend is
asked about in ``supports_op`` is exactly the kind it meets in a model. Shapes are chosen to be
awkward: one row, batches of 1, 7 and 33, widths that are not a multiple of a SIMD vector, weight
rows that are not a multiple of anything, grouped-query ratios of 1 to 8, partial caches.
Values are generated per case from a seed derived from its id, so a failure is reproducible.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from gguf import quants

from llmcore.graph.backend import WeightData
from llmcore.gguf import GGML_QUANT_SIZES, GGMLType
from llmcore.graph.builder import GraphBuilder, RopeParams
from llmcore.graph import kv_types
from llmcore.graph.ir import F16, F32, I32, Graph, Node, Op

#: weight types a model's matrices may have, in the order cases are listed
WEIGHT_TYPES = (
    GGMLType.F32, GGMLType.F16, GGMLType.BF16,
    GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
)

#: byte offsets of the f16 super-block scales (d, dmin) in each K-quant block (ggml-common.h); the
#: gguf package cannot quantize K-quants, so their blocks are random bytes with sane scales there
_K_QUANT_SCALE_OFFSETS = {
    GGMLType.Q2_K: (80, 82),
    GGMLType.Q3_K: (108,),
    GGMLType.Q4_K: (0, 2),
    GGMLType.Q5_K: (0, 2),
    GGMLType.Q6_K: (208,),
}

Feeds = Callable[[np.random.Generator, int], dict[str, np.ndarray]]


@dataclass(frozen=True)
class CaseData:
    """The values one run of a case uses: weights, initial cache contents and per-step inputs."""

    weights: list[WeightData]
    caches: dict[str, np.ndarray]
    steps: list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class OpCase:
    """One single-op graph. ``node`` is the op under test; the graph's output is ``out``."""

    id: str  # stable and unique, e.g. "mul_mat-Q8_0-33x576-n7"
    description: str  # shapes, types and parameters, for failure messages
    graph: Graph
    node: Node
    feeds: Feeds
    n_steps: int = 1
    n_kv: int = 0

    @property
    def op(self) -> Op:
        return self.node.op

    @property
    def type_name(self) -> str:
        """The type that matters for the op: its weight's or cache's type, else its first source's."""
        leaves = [s for s in self.node.srcs if s.op in (Op.WEIGHT, Op.CACHE)]
        source = leaves[0] if leaves else self.node.srcs[0]
        return source.dtype.name if isinstance(source.dtype, GGMLType) else str(source.dtype)

    def data(self) -> CaseData:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        weights = [random_weight(w.name, w.dtype, w.shape, rng) for w in self.graph.weights]
        # initial cache contents in each cache's storage layout (kv_types.storage)
        caches = {c.name: kv_types.store_rows(c.dtype, rng.standard_normal(c.shape).astype(np.float32))
                  for c in self.graph.caches}
        return CaseData(weights, caches, [self.feeds(rng, step) for step in range(self.n_steps)])


def random_weight(name: str, w_type: GGMLType, shape: tuple[int, ...], rng: np.random.Generator) -> WeightData:
    """A weight of ``w_type`` with random values, laid out as ``WeightData.raw`` documents."""
    values = rng.standard_normal(shape).astype(np.float32)
    if w_type == GGMLType.F32:
        raw = values
    elif w_type == GGMLType.F16:
        raw = values.astype(np.float16)
    elif w_type == GGMLType.BF16:
        raw = quants.quantize(values, w_type).view(np.uint16)
    elif w_type in _K_QUANT_SCALE_OFFSETS:
        block, block_bytes = GGML_QUANT_SIZES[w_type]
        blocks = rng.integers(0, 256, (*shape[:-1], shape[-1] // block, block_bytes), dtype=np.uint8)
        for offset in _K_QUANT_SCALE_OFFSETS[w_type]:
            scale = rng.uniform(0.002, 0.02, blocks.shape[:-1]).astype(np.float16)
            blocks[..., offset:offset + 2] = scale[..., None].view(np.uint8)
        raw = blocks.reshape(*shape[:-1], -1)
    else:
        raw = quants.quantize(values, w_type)
    return WeightData(name, w_type, tuple(shape), raw)


def op_cases() -> list[OpCase]:
    """Every case the kit runs, in a stable order with unique ids."""
    cases = [*_get_rows(), *_mul_mat(), *_binary(), *_scale(), *_clamp(), *_norms(), *_unary(), *_gated(),
             *_reshape(), *_rope(), *_rope_multi(), *_hadamard(), *_kv_store(), *_attention(), *_routing(), *_mul_mat_id(),
             *_latent_attention(), *_recurrent(), *_rwkv()]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "conformance case ids must be unique"
    return cases


# -- helpers ------------------------------------------------------------------------------------


def _case(case_id: str, description: str, g: GraphBuilder, node: Node, feeds: Feeds, **kw) -> OpCase:
    return OpCase(case_id, description, g.build({"out": node}), node, feeds, **kw)


def _normal(shapes: dict[str, tuple[int, ...]], scale: float = 1.0) -> Feeds:
    return lambda rng, step: {name: (scale * rng.standard_normal(shape)).astype(np.float32)
                              for name, shape in shapes.items()}


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _widths(w_type: GGMLType) -> tuple[int, int]:
    """A narrow and a wide row width legal for ``w_type``: one and three blocks of it, or for the
    float types (no blocks) widths that are no multiple of a SIMD vector."""
    block = GGML_QUANT_SIZES[w_type][0]
    return (block, 3 * block) if block > 1 else (18, 56)


# -- cases per op -------------------------------------------------------------------------------


def _get_rows() -> Iterator[OpCase]:
    for w_type in WEIGHT_TYPES:  # embedding lookups in every weight type
        width = _widths(w_type)[1]
        for n_ids in (1, 7):
            g = GraphBuilder(n_ids, n_ids)
            cid = f"get_rows-{w_type.name}-50x{width}-n{n_ids}"
            table = g.weight(f"{cid}.table", (50, width), w_type)
            node = g.get_rows(table, g.input("ids", (n_ids,), I32))
            # ids repeat and include the first and last rows
            feeds = lambda rng, step, n=n_ids: {"ids": np.resize(np.array([49, 0, 3, 3, 17, 49, 1], np.int32), n)}
            yield _case(cid, f"get_rows table={w_type.name}[50, {width}] ids=i32[{n_ids}]", g, node, feeds)
    for n_rows, n_out in ((33, 1), (33, 5)):  # picking the rows whose logits are wanted
        g = GraphBuilder(n_rows, n_out)
        node = g.get_rows(g.input("x", (n_rows, 64), F32), g.input("ids", (n_out,), I32))
        feeds = lambda rng, step, n=n_rows, k=n_out: {
            "x": rng.standard_normal((n, 64)).astype(np.float32),
            "ids": np.sort(rng.choice(n, k, replace=False)).astype(np.int32)}
        yield _case(f"get_rows-f32-{n_rows}x64-n{n_out}", f"get_rows table=f32[{n_rows}, 64] ids=i32[{n_out}]",
                    g, node, feeds)


def _mul_mat() -> Iterator[OpCase]:
    for w_type in WEIGHT_TYPES:
        small, large = _widths(w_type)
        for rows, k, n in ((1, small, 1), (33, small, 7), (67, large, 1), (16, large, 33)):
            g = GraphBuilder(n, n)
            cid = f"mul_mat-{w_type.name}-{rows}x{k}-n{n}"
            w = g.weight(f"{cid}.w", (rows, k), w_type)
            node = g.mul_mat(w, g.input("x", (n, k), F32))
            yield _case(cid, f"mul_mat w={w_type.name}[{rows}, {k}] x=f32[{n}, {k}]", g, node, _normal({"x": (n, k)}))


def _binary() -> Iterator[OpCase]:
    for op in (Op.ADD, Op.MUL, Op.DIV):
        for n, d in ((1, 64), (33, 577)):
            for operand in ("same", "row", "weight", "per_row"):
                g = GraphBuilder(n, n)
                cid = f"{op.value}-{n}x{d}-{operand}"
                a = g.input("a", (n, d), F32)
                if operand == "weight":  # a norm weight or bias, stored as F32 in the model file
                    b = g.weight(f"{cid}.b", (d,), GGMLType.F32)
                    shapes = {"a": (n, d)}
                else:
                    b_shape = {"same": (n, d), "row": (d,), "per_row": (n, 1)}[operand]
                    b = g.input("b", b_shape, F32)
                    shapes = {"a": (n, d), "b": b_shape}
                node = {Op.ADD: g.add, Op.MUL: g.mul, Op.DIV: g.div}[op](a, b)
                b_desc = f"{b.dtype.name if isinstance(b.dtype, GGMLType) else b.dtype}{list(b.shape)}"
                yield _case(cid, f"{op.value} a=f32[{n}, {d}] b={b_desc}", g, node, _normal(shapes))


def _clamp() -> Iterator[OpCase]:
    n, d = 33, 577
    g = GraphBuilder(n, n)
    node = g.clamp(g.input("x", (n, d), F32), -1.5, 2.0)
    yield _case(f"clamp-{n}x{d}", f"clamp x=f32[{n}, {d}] to [-1.5, 2]", g, node, _normal({"x": (n, d)}, 2.0))


def _scale() -> Iterator[OpCase]:
    for n, d, factor in ((1, 64, 0.125), (33, 577, -3.0)):
        g = GraphBuilder(n, n)
        node = g.scale(g.input("x", (n, d), F32), factor)
        yield _case(f"scale-{n}x{d}-{factor:g}", f"scale x=f32[{n}, {d}] factor={factor}", g, node,
                    _normal({"x": (n, d)}))


def _norms() -> Iterator[OpCase]:
    # magnitude 1e-3 makes mean(x^2) comparable to eps, so the eps term is checked too
    for op in (Op.RMS_NORM, Op.NORM):
        for n, d, eps, magnitude in ((1, 64, 1e-5, 1.0), (7, 576, 1e-6, 1.0), (33, 577, 1e-5, 1e-3), (2, 4096, 1e-5, 30.0)):
            g = GraphBuilder(n, n)
            x = g.input("x", (n, d), F32)
            node = g.rms_norm(x, eps) if op is Op.RMS_NORM else g.norm(x, eps)
            feeds = lambda rng, step, n=n, d=d, m=magnitude: {
                "x": (m * (rng.standard_normal((n, d)) + 0.5)).astype(np.float32)}
            yield _case(f"{op.value}-{n}x{d}-eps{eps:g}-mag{magnitude:g}",
                        f"{op.value} x=f32[{n}, {d}] eps={eps} |x|~{magnitude}", g, node, feeds)


def _unary() -> Iterator[OpCase]:
    for op in (Op.SILU, Op.GELU, Op.GELU_QUICK, Op.TANH, Op.SIGMOID):
        for n, d in ((1, 64), (33, 577)):
            g = GraphBuilder(n, n)
            x = g.input("x", (n, d), F32)
            node = {Op.SILU: g.silu, Op.GELU: g.gelu, Op.GELU_QUICK: g.gelu_quick, Op.TANH: g.tanh,
                    Op.SIGMOID: g.sigmoid}[op](x)
            # spread over [-12, 12]: saturated tails included
            yield _case(f"{op.value}-{n}x{d}", f"{op.value} x=f32[{n}, {d}] in [-12, 12]", g, node,
                        lambda rng, step, n=n, d=d: {"x": rng.uniform(-12, 12, (n, d)).astype(np.float32)})


def _gated() -> Iterator[OpCase]:
    for op in (Op.SWIGLU, Op.GEGLU):
        for n, d in ((1, 64), (7, 1536), (33, 577)):
            g = GraphBuilder(n, n)
            gate, up = g.input("gate", (n, d), F32), g.input("up", (n, d), F32)
            node = g.swiglu(gate, up) if op is Op.SWIGLU else g.geglu(gate, up)
            yield _case(f"{op.value}-{n}x{d}", f"{op.value} gate=up=f32[{n}, {d}]", g, node,
                        _normal({"gate": (n, d), "up": (n, d)}, 3.0))
    for n, d in ((1, 64), (33, 577)):  # gpt-oss's: values past the limit of 7 on both sides
        g = GraphBuilder(n, n)
        node = g.swiglu_oai(g.input("gate", (n, d), F32), g.input("up", (n, d), F32), 1.702, 7.0)
        yield _case(f"swiglu_oai-{n}x{d}", f"swiglu_oai gate=up=f32[{n}, {d}] alpha=1.702 limit=7", g, node,
                    _normal({"gate": (n, d), "up": (n, d)}, 6.0))


def _reshape() -> Iterator[OpCase]:
    for src, dst in (((7, 576), (7, 9, 64)), ((1, 3, 64), (1, 192))):
        g = GraphBuilder(src[0], src[0])
        node = g.reshape(g.input("x", src, F32), dst)
        yield _case(f"reshape-{_fmt(src)}-to-{_fmt(dst)}", f"reshape f32{list(src)} -> {list(dst)}", g, node,
                    _normal({"x": src}))


def _rope() -> Iterator[OpCase]:
    variants = {
        "normal": RopeParams(n_rot=64),
        "neox": RopeParams(n_rot=64, neox=True),
        "partial": RopeParams(n_rot=32),
        "partial-neox": RopeParams(n_rot=32, neox=True),
        "base1e6": RopeParams(n_rot=128, freq_base=1e6),
        "linear": RopeParams(n_rot=64, freq_scale=0.25),
        "yarn": RopeParams(n_rot=64, freq_scale=0.25, ext_factor=1.0, n_ctx_orig=2048),
        "yarn-neox": RopeParams(n_rot=128, neox=True, freq_base=5e5, freq_scale=0.125, ext_factor=1.0,
                                attn_factor=0.9, n_ctx_orig=4096),
    }
    for label, params in variants.items():
        head_dim = max(64, params.n_rot)
        for n, heads in ((1, 3), (7, 9)):
            g = GraphBuilder(n, n)
            node = g.rope(g.input("x", (n, heads, head_dim), F32), g.input("positions", (n,), I32), params)
            feeds = lambda rng, step, n=n, heads=heads, d=head_dim: {
                "x": rng.standard_normal((n, heads, d)).astype(np.float32),
                "positions": np.sort(rng.integers(0, 8192, n)).astype(np.int32)}
            yield _case(f"rope-{label}-{n}x{heads}x{head_dim}", f"rope x=f32[{n}, {heads}, {head_dim}] {params}",
                        g, node, feeds)


def _rope_multi() -> Iterator[OpCase]:
    """Qwen2-VL's M-RoPE (sections 16, 24, 24 of 64 angles; a partial rotation) with text and image
    positions, and its encoder's 2-D rotation (four sections of a quarter head)."""
    variants = {
        "text": (RopeParams(n_rot=128, neox=True, freq_base=1e6), (16, 24, 24, 0), False, 128),
        "text-partial": (RopeParams(n_rot=32, neox=True), (4, 6, 6, 0), False, 64),
        "vision": (RopeParams(n_rot=40, neox=True), (20, 20, 20, 20), True, 80),
    }
    for label, (params, sections, vision, head_dim) in variants.items():
        for n, heads in ((1, 3), (9, 4)):
            g = GraphBuilder(n, n)
            node = g.rope_multi(g.input("x", (n, heads, head_dim), F32), g.input("positions", (4, n), I32), params,
                                sections, vision)
            feeds = lambda rng, step, n=n, heads=heads, d=head_dim: {
                "x": rng.standard_normal((n, heads, d)).astype(np.float32),
                "positions": rng.integers(0, 2048, (4, n)).astype(np.int32)}
            yield _case(f"rope_multi-{label}-{n}x{heads}x{head_dim}",
                        f"rope_multi x=f32[{n}, {heads}, {head_dim}] sections {sections} {params}", g, node, feeds)


def _hadamard() -> Iterator[OpCase]:
    for n, shape in ((64, (1, 3, 64)), (64, (7, 576)), (128, (5, 2, 128))):
        g = GraphBuilder(shape[0], shape[0])
        node = g.hadamard(g.input("x", shape, F32), n)
        yield _case(f"hadamard-{n}-{_fmt(shape)}", f"hadamard n={n} x=f32[{', '.join(map(str, shape))}]", g, node,
                    _normal({"x": shape}))


def _kv_store() -> Iterator[OpCase]:
    for dtype in kv_types.KV_CACHE_TYPES:
        for n, width in ((1, 192), (7, 576)):
            if dtype not in (F16, F32) and n == 1:
                continue  # the other types: one shape is enough
            g = GraphBuilder(n, n)
            cid = f"kv_store-{dtype}-64x{width}-n{n}"
            cache = g.cache(f"{cid}.cache", (64, width), dtype)
            node = g.kv_store(cache, g.input("x", (n, width), F32), g.input("cells", (n,), I32))
            # two steps into distinct cells: the second must not undo the first
            feeds = lambda rng, step, n=n, w=width: {
                "x": rng.standard_normal((n, w)).astype(np.float32),
                "cells": (np.arange(n, dtype=np.int32) * 5 + 3 + 40 * step) % 64}
            yield _case(cid, f"kv_store x=f32[{n}, {width}] into cache={dtype}[64, {width}] (2 steps)", g, node,
                        feeds, n_steps=2)


def _attention() -> Iterator[OpCase]:
    n_cells = 64
    yield from _attention_cache_types(n_cells)
    for dtype in (F16, F32):
        for n_head, n_head_kv, head_dim in ((9, 3, 64), (4, 4, 32), (8, 1, 128), (12, 4, 48)):
            for n, n_kv in ((1, 1), (1, 37), (7, 7), (7, 64), (33, 40)):
                if dtype == F32 and (n_head, n_kv) not in ((9, 37), (4, 7)):
                    continue  # f32 caches: a sample is enough
                g = GraphBuilder(n, n)
                cid = f"attention-{dtype}-h{n_head}kv{n_head_kv}d{head_dim}-n{n}-kv{n_kv}"
                width = n_head_kv * head_dim
                k = g.cache(f"{cid}.k", (n_cells, width), dtype)
                v = g.cache(f"{cid}.v", (n_cells, width), dtype)
                q = g.input("q", (n, n_head, head_dim), F32)
                scale = 1.0 / math.sqrt(head_dim)
                node = g.attention(q, k, v, g.input("kq_mask", (n, n_cells), F32), scale)
                yield _case(cid, f"attention q=f32[{n}, {n_head}, {head_dim}] kv={dtype}[{n_cells}, {width}] "
                                 f"(GQA {n_head}/{n_head_kv}) n_kv={n_kv} scale={scale:.4g}",
                            g, node, _attention_feeds(n, n_head, head_dim, n_cells, n_kv), n_kv=n_kv)
    for n_head, n in ((8, 1), (6, 7)):  # ALiBi (MPT, BLOOM): 6 heads take slopes past the largest power of two
        g = GraphBuilder(n, n)
        cid = f"attention-alibi-h{n_head}-n{n}"
        width = n_head * 32
        k, v = (g.cache(f"{cid}.{name}", (n_cells, width), F16) for name in "kv")
        node = g.attention(g.input("q", (n, n_head, 32), F32), k, v, g.input("kq_mask", (n, n_cells), F32),
                           1.0 / math.sqrt(32), max_bias=8.0)
        yield _case(cid, f"attention q=f32[{n}, {n_head}, 32] kv=f16[{n_cells}, {width}] ALiBi max_bias=8 n_kv=40",
                    g, node, _attention_feeds(n, n_head, 32, n_cells, 40, alibi=True), n_kv=40)
    for n in (1, 7):  # Gemma 2's soft-capped scores
        g = GraphBuilder(n, n)
        cid = f"attention-softcap-n{n}"
        k, v = (g.cache(f"{cid}.{name}", (n_cells, 64), F16) for name in "kv")
        node = g.attention(g.input("q", (n, 4, 32), F32), k, v, g.input("kq_mask", (n, n_cells), F32),
                           1.0 / math.sqrt(32), softcap=1.5)
        yield _case(cid, f"attention q=f32[{n}, 4, 32] kv=f16[{n_cells}, 64] softcap=1.5 n_kv=40",
                    g, node, _attention_feeds(n, 4, 32, n_cells, 40), n_kv=40)
    for n in (1, 7):  # Grok's cap, its multiplier folded into the tanh's factor
        g = GraphBuilder(n, n)
        cid = f"attention-softcap-scale-n{n}"
        k, v = (g.cache(f"{cid}.{name}", (n_cells, 64), F16) for name in "kv")
        node = g.attention(g.input("q", (n, 4, 32), F32), k, v, g.input("kq_mask", (n, n_cells), F32), 1.0,
                           softcap=3.0, softcap_scale=0.25 / 3.0)
        yield _case(cid, f"attention q=f32[{n}, 4, 32] kv=f16[{n_cells}, 64] 3 * tanh(q.k * 0.25 / 3) n_kv=40",
                    g, node, _attention_feeds(n, 4, 32, n_cells, 40), n_kv=40)
    for n, n_kv, flash in ((1, 1, False), (7, 40, False), (1, 40, True), (7, 40, True), (64, 64, True)):
        g = GraphBuilder(n, n)  # gpt-oss's attention sinks, without and with flash attention (one row, tiled)
        cid = f"attention-sinks-{'fa' if flash else 'nofa'}-n{n}-kv{n_kv}"
        k, v = (g.cache(f"{cid}.{name}", (n_cells, 128), F16) for name in "kv")
        node = g.attention(g.input("q", (n, 8, 32), F32), k, v, g.input("kq_mask", (n, n_cells), F32),
                           1.0 / math.sqrt(32), flash=flash, sinks=g.weight(f"{cid}.sinks", (8,), GGMLType.F32))
        yield _case(cid, f"attention q=f32[{n}, 8, 32] kv=f16[{n_cells}, 128] sinks=f32[8] "
                         f"flash={'on' if flash else 'off'} n_kv={n_kv}",
                    g, node, _attention_feeds(n, 8, 32, n_cells, n_kv), n_kv=n_kv)


def _attention_cache_types(n_cells: int) -> Iterator[OpCase]:
    """Attention over caches of llama.cpp's other types, with flash attention (ggml's online softmax)
    and without; a quantized V cache only with it."""
    combos = [(t, t, True) for t in kv_types.KV_CACHE_TYPES] + [
        (F16, F16, False), (F32, F32, False), ("bf16", "bf16", False), ("q8_0", F16, False), ("q4_1", F32, False),
        (F16, "q8_0", True), ("q5_1", F16, True)]
    for type_k, type_v, flash in combos:
        for n, n_kv in ((1, 37), (7, 64)):
            if (type_k, type_v, flash) in ((F16, F16, False), (F32, F32, False)):
                continue  # the cases below
            g = GraphBuilder(n, n)
            cid = f"attention-{type_k}-{type_v}-{'fa' if flash else 'nofa'}-n{n}-kv{n_kv}"
            k = g.cache(f"{cid}.k", (n_cells, 3 * 64), type_k)
            v = g.cache(f"{cid}.v", (n_cells, 3 * 64), type_v)
            node = g.attention(g.input("q", (n, 9, 64), F32), k, v, g.input("kq_mask", (n, n_cells), F32), 0.125,
                               flash=flash)
            yield _case(cid, f"attention q=f32[{n}, 9, 64] k={type_k} v={type_v}[{n_cells}, 192] "
                             f"flash={'on' if flash else 'off'} n_kv={n_kv}",
                        g, node, _attention_feeds(n, 9, 64, n_cells, n_kv), n_kv=n_kv)
    for n in (1, 64):  # flash attention's one-query path and its tiled path (64 queries or more, f16)
        g = GraphBuilder(n, n)
        cid = f"attention-f16-f16-fa-n{n}-kv{n}-softcap"
        k, v = (g.cache(f"{cid}.{name}", (n_cells, 128), F16) for name in "kv")
        node = g.attention(g.input("q", (n, 4, 64), F32), k, v, g.input("kq_mask", (n, n_cells), F32), 0.125,
                           softcap=1.5, flash=True)
        yield _case(cid, f"attention q=f32[{n}, 4, 64] kv=f16[{n_cells}, 128] flash softcap=1.5 n_kv={n}",
                    g, node, _attention_feeds(n, 4, 64, n_cells, n), n_kv=n)


def _routing() -> Iterator[OpCase]:
    """The gating and the choice of experts: softmax and sums over rows of a token's experts (widths
    off a multiple of 16, which ggml's softmax takes 16 at a time), top-k with ties (values on a
    coarse grid: std::sort's order decides), the selected weights and their weighted sum."""
    for n, width in ((1, 8), (7, 60), (33, 128)):
        for op in (Op.SOFTMAX, Op.SUM_ROWS):
            g = GraphBuilder(n, n)
            x = g.input("x", (n, width), F32)
            node = g.softmax(x) if op is Op.SOFTMAX else g.sum_rows(x)
            yield _case(f"{op.value}-{n}x{width}", f"{op.value} x=f32[{n}, {width}]", g, node,
                        _normal({"x": (n, width)}, 3.0))
        k = min(8, width // 4)
        for ties in (False, True):
            g = GraphBuilder(n, n)
            node = g.top_k(g.input("x", (n, width), F32), k)
            feeds = lambda rng, step, n=n, w=width, t=ties: {
                "x": (np.round(rng.standard_normal((n, w)) * 2) / 2 if t else rng.standard_normal((n, w))).astype(np.float32)}
            yield _case(f"top_k-{n}x{width}-k{k}{'-ties' if ties else ''}",
                        f"top_k x=f32[{n}, {width}] k={k}{' (values on a grid of 1/2: ties)' if ties else ''}",
                        g, node, feeds)
        g = GraphBuilder(n, n)
        node = g.gather(g.input("x", (n, width), F32), g.input("ids", (n, k), I32))
        yield _case(f"gather-{n}x{width}-k{k}", f"gather x=f32[{n}, {width}] ids=i32[{n}, {k}]", g, node,
                    lambda rng, step, n=n, w=width, k=k: {"x": rng.standard_normal((n, w)).astype(np.float32),
                                                          "ids": _expert_ids(rng, n, w, k)})
    for n, k, d in ((1, 2, 64), (7, 8, 577)):
        g = GraphBuilder(n, n)
        node = g.weighted_sum(g.input("x", (n, k, d), F32), g.input("w", (n, k), F32))
        yield _case(f"weighted_sum-{n}x{k}x{d}", f"weighted_sum x=f32[{n}, {k}, {d}] w=f32[{n}, {k}]", g, node,
                    _normal({"x": (n, k, d), "w": (n, k)}))


def _mul_mat_id() -> Iterator[OpCase]:
    """Expert-routed products: one token (decode: only the selected experts), three and seven (an
    expert meeting a few tokens), and 33 tokens over 4 experts (experts with 16 and more rows: the
    batched kernels); the FFN's input (one slot read by every selected expert) and the down
    projection's (a row per slot)."""
    for w_type in (GGMLType.F32, GGMLType.F16, GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q6_K):
        cols = _widths(w_type)[1]
        for n_expert, rows, n, k, x_slots in ((8, 33, 1, 2, 1), (4, 16, 3, 2, 2), (8, 16, 7, 2, 2), (4, 40, 33, 2, 1),
                                              (6, 16, 33, 3, 3)):
            g = GraphBuilder(n, n)
            cid = f"mul_mat_id-{w_type.name}-{n_expert}x{rows}x{cols}-n{n}-k{k}-x{x_slots}"
            w = g.weight(f"{cid}.w", (n_expert, rows, cols), w_type)
            node = g.mul_mat_id(w, g.input("x", (n, x_slots, cols), F32), g.input("ids", (n, k), I32))
            feeds = lambda rng, step, n=n, e=n_expert, k=k, shape=(n, x_slots, cols): {
                "x": rng.standard_normal(shape).astype(np.float32), "ids": _expert_ids(rng, n, e, k)}
            yield _case(cid, f"mul_mat_id w={w_type.name}[{n_expert}, {rows}, {cols}] x=f32[{n}, {x_slots}, {cols}] "
                             f"ids=i32[{n}, {k}]", g, node, feeds)


def _latent_attention() -> Iterator[OpCase]:
    """What DeepSeek's multi-head latent attention and routing add: groups of experts masked by
    the groups chosen, parts of rows sliced and joined, a matrix per head (the absorbed key and
    value projections, over the float types and a block type), and attention whose values are the
    key cache itself (the latent part of each cached row)."""
    for n, n_group, size, k in ((1, 4, 4, 2), (7, 8, 3, 3)):
        g = GraphBuilder(n, n)
        node = g.mask_groups(g.input("x", (n, n_group * size), F32), g.input("ids", (n, k), I32), size)
        yield _case(f"mask_groups-{n}x{n_group}x{size}-k{k}", f"mask_groups x=f32[{n}, {n_group * size}] "
                    f"groups of {size} ids=i32[{n}, {k}]", g, node,
                    lambda rng, step, n=n, e=n_group, k=k, s=size: {
                        "x": rng.standard_normal((n, e * s)).astype(np.float32), "ids": _expert_ids(rng, n, e, k)})
    for shape, start, stop in (((1, 3, 24), 16, 24), ((7, 4, 40), 0, 32), ((5, 72), 64, 72)):
        g = GraphBuilder(shape[0], shape[0])
        node = g.slice(g.input("x", shape, F32), start, stop)
        yield _case(f"slice-{'x'.join(map(str, shape))}-{start}-{stop}", f"slice x=f32{list(shape)} [{start}:{stop}]",
                    g, node, _normal({"x": shape}))
    for a_shape, b_width in (((1, 3, 32), 8), ((7, 72), 8)):
        b_shape = (*a_shape[:-1], b_width)
        g = GraphBuilder(a_shape[0], a_shape[0])
        node = g.concat(g.input("a", a_shape, F32), g.input("b", b_shape, F32))
        yield _case(f"concat-{'x'.join(map(str, a_shape))}-{b_width}", f"concat a=f32{list(a_shape)} "
                    f"b=f32{list(b_shape)}", g, node, _normal({"a": a_shape, "b": b_shape}))
    for w_type in (GGMLType.F32, GGMLType.F16, GGMLType.Q8_0):
        cols = _widths(w_type)[1]
        for n, n_head, rows in ((1, 4, 40), (9, 3, 16)):
            g = GraphBuilder(n, n)
            cid = f"mul_mat_heads-{w_type.name}-{n_head}x{rows}x{cols}-n{n}"
            node = g.mul_mat_heads(g.weight(f"{cid}.w", (n_head, rows, cols), w_type),
                                   g.input("x", (n, n_head, cols), F32))
            yield _case(cid, f"mul_mat_heads w={w_type.name}[{n_head}, {rows}, {cols}] x=f32[{n}, {n_head}, {cols}]",
                        g, node, _normal({"x": (n, n_head, cols)}))
    n_cells = 64
    # 576: DeepSeek's real rows (its 512 latent values and 64 rotated dimensions)
    for n, n_kv, width, flash in ((1, 37, 72, False), (7, 64, 72, False), (1, 37, 576, False), (7, 40, 576, True)):
        g = GraphBuilder(n, n)
        cid = f"attention-latent-f16-n{n}-kv{n_kv}" + (f"-d{width}" if width != 72 else "") + ("-fa" if flash else "")
        kv = g.cache(f"{cid}.kv", (n_cells, width), F16)
        node = g.attention(g.input("q", (n, 4, width), F32), kv, kv, g.input("kq_mask", (n, n_cells), F32), 0.2,
                           flash=flash)
        yield _case(cid, f"attention q=f32[{n}, 4, {width}] k=v=f16[{n_cells}, {width}] (one cache) n_kv={n_kv}"
                         f"{' flash' if flash else ''}",
                    g, node, _attention_feeds(n, 4, width, n_cells, n_kv), n_kv=n_kv)


def _recurrent() -> Iterator[OpCase]:
    """Mamba's conv and scan (Mamba's per-channel decays, Mamba-2's per-head ones over states of 80:
    ggml's 64-value SIMD loop and a tail) on three state rows, tokens of the sequences interleaved,
    in two steps: the second goes on from the states the first leaves."""
    for n, channels in ((1, 40), (7, 96)):
        g = GraphBuilder(n, n)
        cid = f"ssm_conv-{channels}x4-n{n}"
        state = g.cache(f"{cid}.state", (3, channels * 3), F32)
        node = g.ssm_conv(state, g.input("x", (n, channels), F32), g.weight(f"{cid}.w", (channels, 4), GGMLType.F32),
                          g.input("slots", (n,), I32))
        yield _case(cid, f"ssm_conv x=f32[{n}, {channels}] kernel 4, 3 states (2 steps)", g, node,
                    _state_feeds(n, {"x": (n, channels)}), n_steps=2)
    for n, n_head, head_dim, n_group, d_state in ((1, 24, 1, 1, 16), (5, 48, 1, 1, 16), (1, 4, 8, 2, 80),
                                                  (6, 4, 8, 2, 80)):
        g = GraphBuilder(n, n)
        per_head = head_dim > 1
        cid = f"ssm_scan-{n_head}x{head_dim}x{d_state}-g{n_group}-n{n}"
        width = n_head * head_dim
        a_shape, d_shape = ((n_head, 1), (n_head, 1)) if per_head else ((width, d_state), (width,))
        node = g.ssm_scan(g.cache(f"{cid}.state", (3, width * d_state), F32), g.input("x", (n, n_head, head_dim), F32),
                          g.input("dt", (n, n_head), F32), g.weight(f"{cid}.a", a_shape, GGMLType.F32),
                          g.input("b", (n, n_group, d_state), F32), g.input("c", (n, n_group, d_state), F32),
                          g.weight(f"{cid}.d", d_shape, GGMLType.F32), g.input("slots", (n,), I32))
        yield _case(cid, f"ssm_scan x=f32[{n}, {n_head}, {head_dim}] state {d_state}, {n_group} groups, 3 states "
                         "(2 steps)", g, node,
                    _state_feeds(n, {"x": (n, n_head, head_dim), "dt": (n, n_head), "b": (n, n_group, d_state),
                                     "c": (n, n_group, d_state)}), n_steps=2)


def _rwkv() -> Iterator[OpCase]:
    """RWKV's ops: expf and the L2 norm over rows; the token shift, both wkv recurrences and gated linear
    attention on three
    state rows, tokens of the sequences interleaved, in two steps (heads of 64, ggml's SIMD width)."""
    for op in ("exp", "l2_norm"):
        g = GraphBuilder(5, 5)
        x = g.input("x", (5, 2, 64), F32)
        node = g.exp(x) if op == "exp" else g.l2_norm(x, 1e-12)
        yield _case(f"{op}-5x2x64", f"{op} x=f32[5, 2, 64]", g, node, _normal({"x": (5, 2, 64)}))
    for n in (1, 7):
        g = GraphBuilder(n, n)
        cid = f"token_shift-96-n{n}"
        node = g.token_shift(g.cache(f"{cid}.state", (3, 96), F32), g.input("x", (n, 96), F32), g.input("slots", (n,), I32))
        yield _case(cid, f"token_shift x=f32[{n}, 96], 3 states (2 steps)", g, node,
                    _state_feeds(n, {"x": (n, 96)}), n_steps=2)
        heads = (n, 2, 64)
        g = GraphBuilder(n, n)
        cid = f"rwkv_wkv6-2x64-n{n}"
        k, v, r, w = (g.input(name, heads, F32) for name in ("k", "v", "r", "w"))
        node = g.rwkv_wkv6(g.cache(f"{cid}.state", (3, 2 * 64 * 64), F32), k, v, r,
                           g.weight(f"{cid}.u", (2, 64), GGMLType.F32), w, g.input("slots", (n,), I32))
        yield _case(cid, f"rwkv_wkv6 k=v=r=w=f32[{n}, 2, 64], 3 states (2 steps)", g, node,
                    _state_feeds(n, {name: heads for name in ("k", "v", "r", "w")}), n_steps=2)
        g = GraphBuilder(n, n)
        cid = f"gated_linear_attn-2x64-n{n}"
        node = g.gated_linear_attn(g.cache(f"{cid}.state", (3, 2 * 64 * 64), F32),
                                   *(g.input(name, heads, F32) for name in ("k", "v", "q", "g")),
                                   g.input("slots", (n,), I32), 0.125)
        yield _case(cid, f"gated_linear_attn k=v=q=g=f32[{n}, 2, 64] scale 0.125, 3 states (2 steps)", g, node,
                    _state_feeds(n, {name: heads for name in ("k", "v", "q", "g")}), n_steps=2)
        g = GraphBuilder(n, n)
        cid = f"rwkv_wkv7-2x64-n{n}"
        names = ("r", "w", "k", "v", "a", "b")
        node = g.rwkv_wkv7(g.cache(f"{cid}.state", (3, 2 * 64 * 64), F32), *(g.input(name, heads, F32) for name in names),
                           g.input("slots", (n,), I32))
        yield _case(cid, f"rwkv_wkv7 r=w=k=v=a=b=f32[{n}, 2, 64], 3 states (2 steps)", g, node,
                    _state_feeds(n, {name: heads for name in names}), n_steps=2)


def _state_feeds(n: int, shapes: dict[str, tuple[int, ...]]) -> Feeds:
    """Normal values and each token's state row: the sequences take turns."""
    def feeds(rng: np.random.Generator, step: int) -> dict[str, np.ndarray]:
        values = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
        return {**values, "slots": ((np.arange(n) + step) % 3).astype(np.int32)}
    return feeds


def _expert_ids(rng: np.random.Generator, n: int, n_expert: int, k: int) -> np.ndarray:
    """k distinct experts for each of n tokens, as top-k picks them."""
    return np.argsort(rng.random((n, n_expert)), axis=1)[:, :k].astype(np.int32)


def _attention_feeds(n: int, n_head: int, head_dim: int, n_cells: int, n_kv: int, alibi: bool = False) -> Feeds:
    """Causal mask over the first ``n_kv`` cells (the batch is the last ``n`` tokens) with holes
    where another sequence's cells lie; for ``alibi``, -distance instead of 0 where visible. Beyond
    ``n_kv`` the mask is 0 over random cells: attention must not look there, so a backend that
    ignores ``n_kv`` fails."""

    def feeds(rng: np.random.Generator, step: int) -> dict[str, np.ndarray]:
        cell = np.arange(n_cells)[None, :]
        pos = (n_kv - n + np.arange(n))[:, None]
        visible = (cell <= pos) & ((cell % 5 != 2) | (cell == pos))  # holes: other sequences' cells
        kept = -np.abs(pos - cell) if alibi else 0.0
        mask = np.where(visible, kept, np.where(cell >= n_kv, 0.0, -np.inf)).astype(np.float32)
        return {"q": rng.standard_normal((n, n_head, head_dim)).astype(np.float32), "kq_mask": mask}

    return feeds


__all__ = ["WEIGHT_TYPES", "CaseData", "OpCase", "op_cases", "random_weight"]
