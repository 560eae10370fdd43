"""What every model architecture shares: hyper-parameters read from GGUF metadata, access to the
weights by their GGUF names, and the registry that maps ``general.architecture`` to a builder."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from llmcore.errors import ModelError
from llmcore.gguf import GGMLType
from llmcore.graph.builder import F16, F32, I32, GraphBuilder, RopeParams
from llmcore.graph.ir import DType, Graph, Node, Op
from llmcore.graph.kv_types import CacheConfig
from llmcore.models.adapters import ActiveLora, ControlVector
from llmcore.models.pooling import Pooling, pooled_output


#: llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS
MAX_LAYERS = 512
MAX_EXPERTS = 512
#: sizes far beyond any released model, so that a corrupt header fails here instead of sizing an allocation
MAX_EMBEDDING_LENGTH = 1 << 20
MAX_HEADS = 1 << 14
MAX_HEAD_DIM = 1 << 16
MAX_FEED_FORWARD_LENGTH = 1 << 24
MAX_VOCAB = 1 << 24
MAX_CONTEXT_LENGTH = 1 << 27


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
    n_expert_used: int = 0  # experts each token is routed to (llama.cpp's n_expert_used)
    expert_gating: int = 0  # {arch}.expert_gating_func: llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_* (0: unset)
    expert_weights_norm: bool = False  # {arch}.expert_weights_norm: routing weights rescaled to sum to one
    expert_weights_scale: float = 0.0  # {arch}.expert_weights_scale: routing weights times this (0: unset)
    n_expert_groups: int = 0  # {arch}.expert_group_count: experts in groups, a token using n_group_used of them
    n_group_used: int = 0  # {arch}.expert_group_used_count
    rope_yarn_log_mul: float = 0.0  # {arch}.rope.scaling.yarn_log_multiplier as the file has it
    clamp_kqv: float = 0.0  # MPT and OLMo clip queries, keys and values to [-clamp_kqv, clamp_kqv]; 0: no clip
    max_alibi_bias: float = 0.0  # ALiBi's bias of the first head (MPT); 0: no ALiBi
    logit_scale: float | None = None  # {arch}.logit_scale: the logits times this (Command-R, Grok); None: not given
    embedding_scale: float | None = None  # {arch}.embedding_scale: the token embeddings times this (Grok)
    attn_out_scale: float | None = None  # {arch}.attention.output_scale: Grok's scores times this, inside the cap
    parallel_residual: bool = True  # GPT-NeoX's use_parallel_residual: attention and FFN read one input
    sliding: SlidingWindow | None = None  # as the file gives it; a family applies its defaults
    attn_softcap: float | None = None  # {arch}.attn_logit_softcapping (Gemma 2)
    final_softcap: float | None = None  # {arch}.final_logit_softcapping (Gemma 2)
    causal: bool = True  # {arch}.attention.causal: False for encoders, whose tokens see their whole sequence
    pooling: Pooling | None = None  # {arch}.pooling_type: an embedding model's pooling (None: unspecified)
    # {arch}.classifier.pooling_type: what a reranker's head reads under rank pooling, each sequence's
    # mean (MEAN) or one row (anything else); None: unspecified, the family's default_classifier_pooling
    classifier_pooling: Pooling | None = None
    ssm: SSMParams | None = None  # {arch}.ssm.*: a state-space model's sizes (Mamba)
    wkv_head_size: int = 0  # {arch}.wkv.head_size: RWKV's head width (0: not an RWKV file)
    rescale_every: int = 0  # {arch}.rescale_every_n_layers: RWKV-6 halves the residual after each n layers
    hidden_act: str | None = None  # {arch}.hidden_activation: the FFN's activation where a family lets files choose
    rope_sections: tuple[int, ...] = ()  # {arch}.rope.dimension_sections: M-RoPE's sections (Qwen2-VL), in angles

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], n_vocab: int) -> HParams:
        """Read and validate the hyper-parameters: every size within the limits above and every
        float finite, so that nothing is sized from an impossible value; a ModelError names the key."""
        arch = meta.get("general.architecture")
        if not isinstance(arch, str):
            raise ModelError(f"metadata 'general.architecture': {arch!r} is not an architecture name")
        keys = _ArchKeys(meta, arch)
        n_layer = keys.integer("block_count", 1, MAX_LAYERS, note=" (llama.cpp's LLAMA_MAX_LAYERS)")
        n_embd = keys.integer("embedding_length", 1, MAX_EMBEDDING_LENGTH)
        # 0 heads: a model without attention (Mamba), as llama.cpp's converter writes it
        n_head = keys.per_layer("attention.head_count", n_layer, 0, MAX_HEADS)
        n_head_kv = keys.per_layer("attention.head_count_kv", n_layer, 1, n_head, default=n_head) if n_head else 0
        if n_head and n_head % n_head_kv:
            raise ModelError(f"metadata '{arch}.attention.head_count_kv': {n_head} query heads cannot be "
                             f"shared among {n_head_kv} key/value heads")
        head_dim = keys.integer("attention.key_length", 1, MAX_HEAD_DIM, default=max(n_embd // max(n_head, 1), 1))
        n_ctx_train = keys.integer("context_length", 1, MAX_CONTEXT_LENGTH)
        return cls(
            arch=arch,
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim=head_dim,
            n_ff=keys.per_layer("feed_forward_length", n_layer, 0, MAX_FEED_FORWARD_LENGTH),
            n_vocab=keys.integer("vocab_size", 1, MAX_VOCAB, default=n_vocab),
            n_ctx_train=n_ctx_train,
            norm_eps=keys.number("attention.layer_norm_rms_epsilon", low=0.0, high=1.0,
                                default=keys.number("attention.layer_norm_epsilon", low=0.0, high=1.0, default=1e-5)),
            rope=_rope_params(keys, head_dim, n_ctx_train),
            n_expert=(n_expert := keys.integer("expert_count", 0, MAX_EXPERTS, default=0)),
            n_expert_used=keys.integer("expert_used_count", 0, n_expert, default=0),
            expert_gating=keys.integer("expert_gating_func", 0, 4, default=0),
            expert_weights_norm=bool(meta.get(f"{arch}.expert_weights_norm", False)),
            expert_weights_scale=keys.number("expert_weights_scale", low=0.0, default=0.0, low_inclusive=True),
            n_expert_groups=(n_groups := keys.integer("expert_group_count", 0, max(n_expert - 1, 0), default=0)),
            n_group_used=keys.integer("expert_group_used_count", 0, max(n_groups - 1, 0), default=0),
            rope_yarn_log_mul=keys.number("rope.scaling.yarn_log_multiplier", low=0.0, default=0.0, low_inclusive=True),
            clamp_kqv=keys.number("attention.clamp_kqv", low=0.0, default=0.0, low_inclusive=True),
            max_alibi_bias=keys.number("attention.max_alibi_bias", low=0.0, default=0.0, low_inclusive=True),
            logit_scale=keys.optional_number("logit_scale"),
            embedding_scale=keys.optional_number("embedding_scale"),
            attn_out_scale=keys.optional_number("attention.output_scale"),
            parallel_residual=bool(meta.get(f"{arch}.use_parallel_residual", True)),
            sliding=SlidingWindow.from_keys(keys, n_layer),
            attn_softcap=keys.optional_number("attn_logit_softcapping"),
            final_softcap=keys.optional_number("final_logit_softcapping"),
            causal=bool(meta.get(f"{arch}.attention.causal", True)),
            pooling=_pooling(keys, "pooling_type"),
            classifier_pooling=_pooling(keys, "classifier.pooling_type"),
            ssm=SSMParams.from_keys(keys),
            wkv_head_size=keys.integer("wkv.head_size", 0, MAX_HEAD_DIM, default=0),
            rescale_every=keys.integer("rescale_every_n_layers", 0, MAX_LAYERS, default=0),
            hidden_act=str(meta[f"{arch}.hidden_activation"]) if f"{arch}.hidden_activation" in meta else None,
            rope_sections=_rope_sections(keys),
        )


@dataclass(frozen=True)
class SSMParams:
    """A selective state-space model's sizes (llama.cpp's ssm_* hyper-parameters): the conv kernel,
    the inner width, the state per channel, the rank of the step projection (Mamba) or the number
    of heads (Mamba-2), and the groups of B and C (Mamba-2)."""

    d_conv: int
    d_inner: int
    d_state: int
    dt_rank: int
    n_group: int = 1
    dt_b_c_rms: bool = False  # Falcon-Mamba: dt, B and C RMS-normalized without weights

    @classmethod
    def from_keys(cls, keys: _ArchKeys) -> SSMParams | None:
        if f"{keys.arch}.ssm.conv_kernel" not in keys.meta:
            return None
        d_inner = keys.integer("ssm.inner_size", 1, MAX_FEED_FORWARD_LENGTH)
        return cls(
            d_conv=keys.integer("ssm.conv_kernel", 2, 64),
            d_inner=d_inner,
            d_state=keys.integer("ssm.state_size", 1, 1 << 12),
            dt_rank=keys.integer("ssm.time_step_rank", 1, d_inner),
            n_group=keys.integer("ssm.group_count", 1, d_inner, default=1),
            dt_b_c_rms=bool(keys.meta.get(f"{keys.arch}.ssm.dt_b_c_rms", False)),
        )


@dataclass(frozen=True)
class SlidingWindow:
    """Sliding-window attention metadata: the window (llama.cpp's n_swa: a token sees the keys of
    the last ``size`` positions, its own included), the layers' pattern and the rope base of the
    windowed layers; None where the file leaves a value to the family's default."""

    size: int | None
    pattern: int | tuple[bool, ...] | None  # each n-th layer global, or a flag per layer
    rope_freq_base: float | None

    @classmethod
    def from_keys(cls, keys: _ArchKeys, n_layer: int) -> SlidingWindow | None:
        size_key, pattern_key = "attention.sliding_window", "attention.sliding_window_pattern"
        pattern = keys.meta.get(f"{keys.arch}.{pattern_key}")
        window = cls(
            size=keys.integer(size_key, 0, MAX_CONTEXT_LENGTH) if f"{keys.arch}.{size_key}" in keys.meta else None,
            pattern=(keys.flags(pattern_key, n_layer) if isinstance(pattern, (list, np.ndarray))
                     else None if pattern is None else keys.integer(pattern_key, 0, MAX_LAYERS)),
            rope_freq_base=keys.optional_number("rope.freq_base_swa"),
        )
        return None if window == cls(None, None, None) else window

    def windowed_layers(self, n_layer: int, default_pattern: int, dense_first: bool = False) -> tuple[bool, ...]:
        """Which layers slide (llama.cpp's set_swa_pattern): with pattern n all but each n-th
        layer (n - 1, 2n - 1, ...; ``dense_first``: 0, n, 2n, ...); 0 makes every layer slide."""
        if isinstance(self.pattern, tuple):
            return self.pattern
        n = default_pattern if self.pattern is None else self.pattern
        return tuple(n == 0 or (il % n != 0 if dense_first else il % n < n - 1) for il in range(n_layer))


class _ArchKeys:
    """Typed, range-checked access to the ``{arch}.*`` metadata keys."""

    def __init__(self, meta: Mapping[str, Any], arch: str) -> None:
        self.meta = meta
        self.arch = arch

    def _value(self, key: str, default: Any) -> tuple[str, Any]:
        name = f"{self.arch}.{key}"
        value = self.meta.get(name, default)
        if value is None:
            raise ModelError(f"metadata key {name} is missing")
        return name, value

    def integer(self, key: str, low: int, high: int, *, default: Any = None, note: str = "") -> int:
        name, value = self._value(key, default)
        return _checked_int(name, value, low, high, note)

    def per_layer(self, key: str, n_layer: int, low: int, high: int, *, default: Any = None) -> int:
        """A value that may be given per layer (an array of ``n_layer``); uniform arrays collapse to one value."""
        name, value = self._value(key, default)
        if not isinstance(value, (list, np.ndarray)):
            return _checked_int(name, value, low, high, "")
        if len(value) != n_layer:
            raise ModelError(f"metadata '{name}': {len(value)} per-layer values for {n_layer} layers")
        values = {_checked_int(name, v, low, high, "") for v in value}
        if len(values) != 1:
            raise ModelError(f"metadata '{name}': per-layer hyper-parameters {sorted(values)} are not supported yet")
        return values.pop()

    def number(self, key: str, *, low: float, high: float = math.inf, default: Any = None,
              low_inclusive: bool = False) -> float:
        """A finite float in (low, high) (``low_inclusive``: [low, high))."""
        name, value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ModelError(f"metadata '{name}': {_shown(value)} is not a number")
        number = float(value)
        above_low = number >= low if low_inclusive else number > low
        if not (math.isfinite(number) and above_low and number < high):
            bounds = f"{'[' if low_inclusive else '('}{low:g}, {high:g})"
            raise ModelError(f"metadata '{name}': {number!r} is not a finite value in {bounds}")
        return number

    def optional_number(self, key: str) -> float | None:
        """A positive finite float, or None where the file does not give one."""
        return self.number(key, low=0.0) if f"{self.arch}.{key}" in self.meta else None

    def flags(self, key: str, n_layer: int) -> tuple[bool, ...]:
        """A per-layer array of booleans (or 0/1 integers)."""
        name, value = self._value(key, None)
        if len(value) != n_layer:
            raise ModelError(f"metadata '{name}': {len(value)} per-layer values for {n_layer} layers")
        return tuple(bool(v) for v in value)

    def text(self, key: str, default: str) -> str:
        name, value = self._value(key, default)
        if not isinstance(value, str):
            raise ModelError(f"metadata '{name}': {_shown(value)} is not a string")
        return value


def _checked_int(name: str, value: Any, low: int, high: int, note: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ModelError(f"metadata '{name}': {_shown(value)} is not an integer")
    if not low <= value <= high:
        raise ModelError(f"metadata '{name}': {value} is outside {low}..{high}{note}")
    return int(value)


def _pooling(keys: _ArchKeys, key: str) -> Pooling | None:
    if f"{keys.arch}.{key}" not in keys.meta:
        return None
    value = keys.integer(key, -1, max(Pooling))
    return None if value < 0 else Pooling(value)


def _rope_sections(keys: _ArchKeys) -> tuple[int, ...]:
    """{arch}.rope.dimension_sections: up to four section widths (llama.cpp's get_key_or_arr of 4),
    padded with zeros to four; () where the file has none."""
    name = f"{keys.arch}.rope.dimension_sections"
    value = keys.meta.get(name)
    if value is None:
        return ()
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not 1 <= len(values) <= 4:
        raise ModelError(f"metadata '{name}': {len(values)} sections; 1 to 4 are needed")
    return tuple(_checked_int(name, v, 0, MAX_HEAD_DIM, "") for v in values) + (0,) * (4 - len(values))


def _shown(value: Any) -> str:
    """A value for an error message, cut short (an array may hold millions of elements)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _rope_params(keys: _ArchKeys, head_dim: int, n_ctx_train: int) -> RopeParams:
    n_rot = keys.integer("rope.dimension_count", 2, head_dim, default=head_dim)
    if n_rot % 2:
        raise ModelError(f"metadata '{keys.arch}.rope.dimension_count': {n_rot} is odd; "
                         "rotary pairs need an even count")
    scaling = keys.text("rope.scaling.type", "none")
    factor = keys.number("rope.scaling.factor", low=0.0, default=0.0, low_inclusive=True)
    freq_scale = 1.0 / factor if scaling in ("linear", "yarn") and factor > 0 else 1.0
    n_ctx_orig = keys.integer("rope.scaling.original_context_length", 1, MAX_CONTEXT_LENGTH, default=n_ctx_train)
    ext_factor = 1.0 if scaling == "yarn" else 0.0
    return RopeParams(
        n_rot=n_rot,
        neox=False,
        freq_base=keys.number("rope.freq_base", low=0.0, default=10000.0),
        freq_scale=freq_scale,
        ext_factor=ext_factor,
        attn_factor=keys.number("rope.scaling.attn_factor", low=0.0, default=1.0),
        beta_fast=keys.number("rope.scaling.yarn_beta_fast", low=-math.inf, default=32.0),
        beta_slow=keys.number("rope.scaling.yarn_beta_slow", low=-math.inf, default=1.0),
        n_ctx_orig=n_ctx_orig,
    )


#: integer and F64 tensors hold indices or metadata in ggml, never weights that it multiplies by
_NOT_WEIGHT_TYPES = frozenset({GGMLType.I8, GGMLType.I16, GGMLType.I32, GGMLType.I64, GGMLType.F64})


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
    #: the architecture names whose files this builder routes to experts (``layers.moe_ffn``)
    expert_archs: ClassVar[tuple[str, ...]] = ()
    #: an encoder (BERT and its kin) has no output head, so its graphs always give embeddings, and
    #: keeps no KV cache: the keys and values of a micro-batch pass through cache cells that the
    #: next one reuses, in f32 (f16 with flash attention), as ggml casts them (llama.cpp's
    #: attention without cache)
    encoder_only: ClassVar[bool] = False
    #: a recurrent model (Mamba) keeps a state per sequence instead of a KV cache (llama.cpp's
    #: recurrent memory): its graphs read and update state rows ``state_slots`` of its caches
    recurrent: ClassVar[bool] = False
    #: sequences the context keeps a state for (set by the context; llama.cpp's n_seq_max)
    n_seq_max: int = 1
    #: positions per token (llama.cpp's n_pos_per_embd): 4 for M-RoPE models, whose ``positions`` input is
    #: i32[4, n] (time, height, width and an unused fourth row), else 1
    n_pos_per_embd: ClassVar[int] = 1
    #: what a reranker's head reads where the file does not say (``classifier_pooling``): one row
    #: of each sequence (its first, or its last in a causal model), or for MEAN its mean row
    default_classifier_pooling: ClassVar[Pooling] = Pooling.CLS
    #: the activation after the head's dense layer ``cls``: tanh (llama.cpp's), or GELU (ModernBERT's)
    classifier_gelu: ClassVar[bool] = False

    def __init__(self, hparams: HParams, weights: Mapping[str, WeightSpec], n_ctx: int,
                 cache: CacheConfig | DType = F16, pooling: Pooling | None = None):
        if hparams.n_head == 0 and not self.recurrent:
            raise ModelError(f"metadata '{hparams.arch}.attention.head_count': 0 heads, but {hparams.arch} "
                             "needs attention heads (only recurrent models have none)")
        # a family's dense builder would otherwise fail on a missing blk.0.ffn_gate.weight
        experts = [name for name in weights if "_exps." in name]
        if hparams.arch not in self.expert_archs and (hparams.n_expert or experts):
            evidence = (f"{hparams.arch}.expert_count = {hparams.n_expert}" if hparams.n_expert
                        else f"tensor {experts[0]}")
            raise ModelError(f"mixture-of-experts layers are not supported for {hparams.arch} yet ({evidence})")
        if experts and not 0 < hparams.n_expert_used <= hparams.n_expert:
            raise ModelError(f"metadata '{hparams.arch}.expert_used_count' ({hparams.n_expert_used}) must be "
                             f"1..{hparams.arch}.expert_count ({hparams.n_expert}) for the experts of {experts[0]}")
        self.hp = hparams
        self.weights = weights
        self.n_ctx = n_ctx
        # the K and V cache types and flash attention (a type name alone: both caches, no flash attention)
        self.cache = cache if isinstance(cache, CacheConfig) else CacheConfig(str(cache), str(cache))
        if self.encoder_only:
            scratch = F16 if self.cache.flash_attn else F32
            self.cache = CacheConfig(scratch, scratch, self.cache.flash_attn)
            pooling = Pooling.NONE if pooling is None else pooling
        #: None: the graphs give logits; else they give embeddings pooled so
        self.pooling = pooling
        self.rope = dataclasses.replace(hparams.rope, neox=self.rope_neox)

    # -- used by forward() ----------------------------------------------------------------------

    def w(self, g: GraphBuilder, name: str) -> Node:
        spec = self.weights.get(name)
        if spec is None:
            raise ModelError(f"tensor {name} is missing from the model file")
        return g.weight(name, spec.shape, spec.type)

    def w_rows(self, g: GraphBuilder, name: str, start: int, stop: int) -> Node:
        """Rows [start, stop) of weight ``name``, a view of a fused tensor (QKV, gate-up)."""
        spec = self.weights.get(name)
        if spec is None:
            raise ModelError(f"tensor {name} is missing from the model file")
        return g.weight_rows(name, spec.shape, spec.type, start, stop)

    def w_vector_as_row(self, g: GraphBuilder, name: str) -> Node:
        """Vector weight ``name`` [n] (or the one-row matrix [1, n] convert_hf_to_gguf.py writes,
        which llama.cpp takes for [n]) as the one-row matrix [1, n] that ggml_mul_mat multiplies a
        1-D tensor as (Qwen2-MoE's shared-expert gate: one logit per token)."""
        spec = self.weights.get(name)
        if spec is None:
            raise ModelError(f"tensor {name} is missing from the model file")
        if any(n != 1 for n in spec.shape[:-1]):
            raise ModelError(f"tensor {name} has shape {spec.shape}; a vector is needed")
        return g.weight(name, (1, spec.shape[-1]), spec.type)

    def has(self, name: str) -> bool:
        return name in self.weights

    @property
    def head_reads_mean(self) -> bool:
        """Whether this graph's pooling is rank with a classification head that reads each
        sequence's mean row (llama.cpp's ``pooling_type_cls`` mean) rather than one of its rows."""
        chosen = self.hp.classifier_pooling
        chosen = self.default_classifier_pooling if chosen is None else chosen
        return self.pooling is Pooling.RANK and chosen is Pooling.MEAN

    @property
    def kv_width(self) -> int:
        return self.hp.n_head_kv * self.hp.head_dim

    # -- the graph ------------------------------------------------------------------------------

    def build_graph(self, n_tokens: int, n_outputs: int, embd_input: bool = False) -> Graph:
        """The forward pass for a batch of ``n_tokens`` giving ``n_outputs`` rows: logits, or in
        an embedding graph (``pooling`` set) the output ``embd``, whose rows are tokens, or one per
        sequence where the pooling picks rows (``pool_rows``: cls, last, rank), while every token
        goes through the last layer, as llama.cpp's embedding contexts output all tokens.
        ``embd_input``: the batch comes as embeddings (input ``embd``), not token ids."""
        g = GraphBuilder(n_tokens, n_outputs)
        picks_rows = self.pooling is not None and self.pooling.picks_rows
        mean_rows = self.head_reads_mean
        inputs = BatchInputs(
            tokens=g.input("tokens", (n_tokens,), I32),
            positions=g.input("positions", (n_tokens,) if self.n_pos_per_embd == 1 else (self.n_pos_per_embd, n_tokens),
                              I32),
            kv_cells=g.input("kv_cells", (n_tokens,), I32),
            kq_mask=g.input("kq_mask", (n_tokens, self.n_ctx), F32),
            out_ids=g.input("out_ids", (n_tokens if picks_rows else n_outputs,), I32),
            kq_mask_swa=g.input("kq_mask_swa", (n_tokens, self.n_ctx), F32) if self.sliding_window else None,
            pool_rows=g.input("pool_rows", (n_outputs,), I32) if picks_rows and not mean_rows else None,
            pool_mean=g.input("pool_mean", (n_outputs, n_tokens), F32) if mean_rows else None,
            pool_mean_rows=g.input("pool_mean_rows", (n_outputs * n_tokens,), I32) if mean_rows else None,
            state_slots=g.input("state_slots", (n_tokens,), I32) if self.recurrent else None,
            embd=g.input("embd", (n_tokens, self.hp.n_embd), F32) if embd_input else None,
        )
        logits = self.forward(g, inputs)
        if self.pooling is None:
            return g.build({"logits": logits})
        return g.build({"embd": pooled_output(g, self, g.embeddings, inputs, self.pooling)})

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        raise NotImplementedError

    def check_weights(self) -> None:
        """Fail with a ModelError unless the weights fit this architecture: every tensor the
        forward pass reads is present with the shape it needs (the graph builder checks shapes),
        of a type its ops compute with, and the embedding and logits span the vocabulary. Run
        once at load, on the one-token graph."""
        graph = self.build_graph(1, 1)
        for node in graph.nodes:
            for position, src in enumerate(node.srcs):
                if src.op is not Op.WEIGHT:
                    continue
                is_matrix = position == 0 and node.op in (Op.MUL_MAT, Op.MUL_MAT_ID, Op.GET_ROWS)
                if src.dtype in _NOT_WEIGHT_TYPES or (not is_matrix and src.dtype != GGMLType.F32):
                    need = "a float or quantized type" if is_matrix else "F32 (it scales or shifts activations)"
                    raise ModelError(f"tensor {src.name} is {src.dtype.name}; "
                                     f"the {node.op.value} reading it needs {need}")
                looks_up_tokens = node.srcs[1] is graph.inputs["tokens"]  # not learned positions
                if node.op is Op.GET_ROWS and looks_up_tokens and src.shape[0] != self.hp.n_vocab:
                    raise ModelError(f"tensor {src.name} has {src.shape[0]} rows for a vocabulary of {self.hp.n_vocab}")
        n_logits = graph.outputs["logits"].shape[-1] if "logits" in graph.outputs else self.hp.n_vocab
        if n_logits != self.hp.n_vocab:
            raise ModelError(f"the output head gives {n_logits} logits for a vocabulary of {self.hp.n_vocab}")

    def layer_output(self, g: GraphBuilder, x: Node, il: int) -> Node:
        """The output of layer ``il``, with the control vector's direction for the layer added where
        one is set (llama.cpp's build_cvec, the layer's last step)."""
        direction = self.control_vector.for_layer(il) if self.control_vector is not None else None
        if direction is None:
            return x
        return g.add(x, g.weight(f"control_vector.{il}", direction.shape, GGMLType.F32), name=f"l_out.{il}")

    def rope_factors(self, g: GraphBuilder) -> Node | None:
        """Per-pair divisors of the rotary angles (Llama 3.1's ``rope_freqs.weight``), if any."""
        return self.w(g, "rope_freqs.weight") if self.has("rope_freqs.weight") else None

    @property
    def max_alibi_bias(self) -> float:
        """ALiBi's maximum bias (0: the model has none); Bloom and Refact fix it instead of reading it."""
        return self.hp.max_alibi_bias

    @property
    def attn_scale(self) -> float:
        return 1.0 / math.sqrt(self.hp.head_dim)

    #: scores are capped to attn_softcap * tanh(score / attn_softcap) before the softmax; 0: not capped
    attn_softcap: float = 0.0
    #: where not 0, the cap is attn_softcap * tanh(score * attn_softcap_scale) instead (Grok)
    attn_softcap_scale: float = 0.0
    #: the window of sliding-window layers (llama.cpp's n_swa); 0 where no layer slides
    sliding_window: int = 0
    #: the window reaches n_swa / 2 positions both ways (an encoder's, llama.cpp's LLAMA_SWA_TYPE_SYMMETRIC)
    #: instead of the last n_swa positions
    symmetric_window: ClassVar[bool] = False
    #: the LoRA adapters the weight products apply, in order, and the control vector added to the
    #: layers' outputs (set by the context; see ``models.adapters``)
    loras: Sequence[ActiveLora] = ()
    control_vector: ControlVector | None = None

    def layer_rope(self, il: int) -> RopeParams:
        """The rotary settings of layer ``il`` (a family with a per-layer rope base overrides this)."""
        return self.rope

    def layer_kq_mask(self, inp: BatchInputs, il: int) -> Node:
        """The attention mask of layer ``il``: the sliding-window mask where the layer slides."""
        return inp.kq_mask


@dataclass(frozen=True)
class BatchInputs:
    """The per-step graph inputs of a decoder: what changes every step lives here, not in nodes."""

    tokens: Node  # i32[n] token ids
    positions: Node  # i32[n] position of each token in its sequence (i32[4, n] for M-RoPE: n_pos_per_embd)
    kv_cells: Node  # i32[n] KV cache cell each token's keys and values are written to
    kq_mask: Node  # f32[n, n_ctx] 0 where a token may attend to a cell, -inf elsewhere
    out_ids: Node  # i32[n_outputs] rows whose logits are returned
    kq_mask_swa: Node | None = None  # f32[n, n_ctx] kq_mask without the cells outside the sliding window
    pool_rows: Node | None = None  # i32[n_seqs] the row each sequence's pooled embedding is taken from
    # f32[n_seqs, n]: 1/n at each of a sequence's n rows, 0 elsewhere (llama.cpp's inp_mean), and
    # i32[n_seqs * n]: every row once per sequence (0, 1, ..., n-1 repeated): a head reading means
    pool_mean: Node | None = None
    pool_mean_rows: Node | None = None
    state_slots: Node | None = None  # i32[n] the state row of each token's sequence (a recurrent model's)
    embd: Node | None = None  # f32[n, n_embd] embeddings given in the tokens' place (an image's)


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
