"""What every model architecture shares: hyper-parameters read from GGUF metadata, access to the
weights by their GGUF names, and the registry that maps ``general.architecture`` to a builder."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from llmcore.errors import ModelError
from llmcore.gguf import GGMLType
from llmcore.graph.builder import F16, F32, I32, GraphBuilder, RopeParams
from llmcore.graph.ir import DType, Graph, Node


@dataclass(frozen=True)
class HParams:
    """Hyper-parameters common to decoder-only transformers, named as in llama.cpp."""

    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    norm_eps: float
    rope: RopeParams
    n_expert: int = 0  # experts per feed-forward layer of a mixture-of-experts model; 0 for a dense one

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], n_vocab: int) -> HParams:
        arch = meta["general.architecture"]

        def get(key: str, default: Any = None) -> Any:
            value = meta.get(f"{arch}.{key}", default)
            if value is None:
                raise ModelError(f"metadata key {arch}.{key} is missing")
            return value

        n_embd = int(get("embedding_length"))
        n_head = _scalar(get("attention.head_count"))
        head_dim = int(get("attention.key_length", n_embd // n_head))
        rope = _rope_params(meta, arch, head_dim)
        eps = meta.get(f"{arch}.attention.layer_norm_rms_epsilon", meta.get(f"{arch}.attention.layer_norm_epsilon"))
        return cls(
            arch=arch,
            n_layer=int(get("block_count")),
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=_scalar(get("attention.head_count_kv", n_head)),
            head_dim=head_dim,
            n_ff=_scalar(get("feed_forward_length")),
            n_vocab=int(meta.get(f"{arch}.vocab_size", n_vocab)),
            n_ctx_train=int(get("context_length")),
            norm_eps=float(eps if eps is not None else 1e-5),
            rope=rope,
            n_expert=int(meta.get(f"{arch}.expert_count", 0)),
        )


def _scalar(value: Any) -> int:
    """Per-layer arrays (e.g. head counts in some models) collapse to one value when uniform."""
    if isinstance(value, (int, float)):
        return int(value)
    values = {int(v) for v in value}
    if len(values) != 1:
        raise ModelError(f"per-layer hyper-parameters {sorted(values)} are not supported yet")
    return values.pop()


def _rope_params(meta: Mapping[str, Any], arch: str, head_dim: int) -> RopeParams:
    n_rot = int(meta.get(f"{arch}.rope.dimension_count", head_dim))
    scaling = meta.get(f"{arch}.rope.scaling.type", "none")
    factor = float(meta.get(f"{arch}.rope.scaling.factor", 0.0) or 0.0)
    freq_scale = 1.0 / factor if scaling in ("linear", "yarn") and factor > 0 else 1.0
    n_ctx_orig = int(meta.get(f"{arch}.rope.scaling.original_context_length", meta.get(f"{arch}.context_length", 0)))
    ext_factor = 1.0 if scaling == "yarn" else 0.0
    attn_factor = float(meta.get(f"{arch}.rope.scaling.attn_factor", 1.0))
    return RopeParams(
        n_rot=n_rot,
        neox=False,
        freq_base=float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
        freq_scale=freq_scale,
        ext_factor=ext_factor,
        attn_factor=attn_factor,
        beta_fast=float(meta.get(f"{arch}.rope.scaling.yarn_beta_fast", 32.0)),
        beta_slow=float(meta.get(f"{arch}.rope.scaling.yarn_beta_slow", 1.0)),
        n_ctx_orig=n_ctx_orig,
    )


@dataclass(frozen=True)
class WeightSpec:
    """A tensor's shape (numpy order) and type, known before any weight is read."""

    shape: tuple[int, ...]
    type: GGMLType


class Architecture:
    """Base of every model builder. A subclass names its GGUF architecture(s) and implements
    :meth:`forward`, reading like the paper's equations on the blocks in ``layers``."""

    names: ClassVar[tuple[str, ...]] = ()
    #: rope style of the family: llama permutes q/k at conversion and uses the "normal" style
    rope_neox: ClassVar[bool] = False

    def __init__(self, hparams: HParams, weights: Mapping[str, WeightSpec], n_ctx: int, cache_type: DType = F16):
        # a family's dense builder would otherwise fail on a missing blk.0.ffn_gate.weight
        experts = [name for name in weights if "_exps." in name]
        if hparams.n_expert or experts:
            evidence = (f"{hparams.arch}.expert_count = {hparams.n_expert}" if hparams.n_expert
                        else f"tensor {experts[0]}")
            raise ModelError(f"mixture-of-experts layers are not supported yet ({evidence})")
        self.hp = hparams
        self.weights = weights
        self.n_ctx = n_ctx
        self.cache_type = cache_type
        self.rope = dataclasses.replace(hparams.rope, neox=self.rope_neox)

    # -- used by forward() ----------------------------------------------------------------------

    def w(self, g: GraphBuilder, name: str) -> Node:
        spec = self.weights.get(name)
        if spec is None:
            raise ModelError(f"tensor {name} is missing from the model file")
        return g.weight(name, spec.shape, spec.type)

    def has(self, name: str) -> bool:
        return name in self.weights

    @property
    def kv_width(self) -> int:
        return self.hp.n_head_kv * self.hp.head_dim

    # -- the graph ------------------------------------------------------------------------------

    def build_graph(self, n_tokens: int, n_outputs: int) -> Graph:
        """The forward pass for a batch of ``n_tokens`` of which ``n_outputs`` produce logits."""
        g = GraphBuilder(n_tokens, n_outputs)
        inputs = BatchInputs(
            tokens=g.input("tokens", (n_tokens,), I32),
            positions=g.input("positions", (n_tokens,), I32),
            kv_cells=g.input("kv_cells", (n_tokens,), I32),
            kq_mask=g.input("kq_mask", (n_tokens, self.n_ctx), F32),
            out_ids=g.input("out_ids", (n_outputs,), I32),
        )
        logits = self.forward(g, inputs)
        return g.build({"logits": logits})

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        raise NotImplementedError

    @property
    def attn_scale(self) -> float:
        return 1.0 / math.sqrt(self.hp.head_dim)


@dataclass(frozen=True)
class BatchInputs:
    """The per-step graph inputs of a decoder: what changes every step lives here, not in nodes."""

    tokens: Node  # i32[n] token ids
    positions: Node  # i32[n] position of each token in its sequence
    kv_cells: Node  # i32[n] KV cache cell each token's keys and values are written to
    kq_mask: Node  # f32[n, n_ctx] 0 where a token may attend to a cell, -inf elsewhere
    out_ids: Node  # i32[n_outputs] rows whose logits are returned


ARCHITECTURES: dict[str, type[Architecture]] = {}


def register(cls: type[Architecture]) -> type[Architecture]:
    for name in cls.names:
        ARCHITECTURES[name] = cls
    return cls


def architecture_for(name: str) -> type[Architecture]:
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(f"architecture {name!r} is not supported (supported: {known})")
    return ARCHITECTURES[name]


__all__ = ["Architecture", "BatchInputs", "HParams", "WeightSpec", "architecture_for", "register"]
