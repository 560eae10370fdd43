"""llama.cpp's ``llama-quantize``: a GGUF model requantized to a file type (Q4_K_M, Q8_0, ...), the same
bytes as llama.cpp 0.3.36 writes for the same input and options.

Which tensor gets which type is ``src/llama-quant.cpp``'s (``llama_tensor_get_type``): a default type
per file type, bent per tensor by its role (attention V, FFN down, output ...), its layer, the
architecture and the hyperparameters (GQA, experts), then by the options, and demoted when a row is
not a multiple of the type's block. The rows themselves are quantized by ``llmcore.quants`` (ggml's
reference quantizers, in C). What the file looks like, and so ours:

- The input's keys in order, then ``general.quantization_version`` (2) and ``general.file_type``
  moved to the end (ggml's ``gguf_set_val`` removes a key and appends it), the ``split.*`` keys
  dropped, then each ``--override-kv`` and, with an importance matrix, ``quantize.imatrix.file``,
  ``.dataset``, ``.entries_count`` and ``.chunks_count``, each appended the same way.
- The tensors sorted as llama.cpp's loader keeps them: the tensors outside ``blk.N.`` first, then
  layer by layer, by name within each; each tensor's data padded to 32 bytes (the alignment is
  always the default, whatever the input's ``general.alignment`` says).

Importance matrices are llama-imatrix's files, GGUF (``<name>.in_sum2`` / ``<name>.counts``) or the
legacy ``.dat``, normalised as llama-quantize normalises them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from llmcore.errors import LLMCoreError
from llmcore.gguf import GGMLType, GGUFReader, GGUFValueType, TensorInfo
from llmcore.gguf.imatrix import read_imatrix
from llmcore.gguf.split import KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS_COUNT
from llmcore.gguf.types import DEFAULT_ALIGNMENT, GGML_QUANT_SIZES, row_bytes
from llmcore.tools.gguf_split import GGUFOutput

__all__ = [
    "FILE_TYPES", "FileType", "Imatrix", "KVOverride", "LlamaFType", "QuantizeOptions", "QuantizePlan", "TensorPlan",
    "load_imatrix", "parse_file_type", "parse_ggml_type", "parse_kv_override", "parse_leading_int",
    "plan_quantization", "size_summary", "write_quantized",
]

QUANTIZATION_VERSION = 2  # GGML_QNT_VERSION
_SLAB_VALUES = 16 << 20  # float32 values converted and quantized at a time (64 MiB)

Metadata = list[tuple[str, Any, GGUFValueType]]


class LlamaFType(IntEnum):
    """llama.h's ``enum llama_ftype``."""

    ALL_F32 = 0
    MOSTLY_F16 = 1
    MOSTLY_Q4_0 = 2
    MOSTLY_Q4_1 = 3
    MOSTLY_Q8_0 = 7
    MOSTLY_Q5_0 = 8
    MOSTLY_Q5_1 = 9
    MOSTLY_Q2_K = 10
    MOSTLY_Q3_K_S = 11
    MOSTLY_Q3_K_M = 12
    MOSTLY_Q3_K_L = 13
    MOSTLY_Q4_K_S = 14
    MOSTLY_Q4_K_M = 15
    MOSTLY_Q5_K_S = 16
    MOSTLY_Q5_K_M = 17
    MOSTLY_Q6_K = 18
    MOSTLY_IQ2_XXS = 19
    MOSTLY_IQ2_XS = 20
    MOSTLY_Q2_K_S = 21
    MOSTLY_IQ3_XS = 22
    MOSTLY_IQ3_XXS = 23
    MOSTLY_IQ1_S = 24
    MOSTLY_IQ4_NL = 25
    MOSTLY_IQ3_S = 26
    MOSTLY_IQ3_M = 27
    MOSTLY_IQ2_S = 28
    MOSTLY_IQ2_M = 29
    MOSTLY_IQ4_XS = 30
    MOSTLY_IQ1_M = 31
    MOSTLY_BF16 = 32
    MOSTLY_TQ1_0 = 36
    MOSTLY_TQ2_0 = 37
    MOSTLY_MXFP4_MOE = 38
    MOSTLY_NVFP4 = 39
    MOSTLY_Q1_0 = 40
    MOSTLY_Q2_0 = 41
    GUESSED = 1024


F = LlamaFType


@dataclass(frozen=True)
class FileType:
    """One of llama-quantize's type arguments: its name, the ``llama_ftype`` it selects, its help line."""

    name: str
    ftype: LlamaFType
    description: str

    @property
    def default_type(self) -> GGMLType:
        """The tensor type most weights get (``llama_ftype_get_default_type``)."""
        return _DEFAULT_TYPE[self.ftype]


#: llama-quantize's QUANT_OPTIONS, in its order (``--help`` lists them so)
FILE_TYPES: tuple[FileType, ...] = tuple(FileType(name, ftype, description) for name, ftype, description in (
    ("Q1_0", F.MOSTLY_Q1_0, " 1.125 bpw quantization"),
    ("Q2_0", F.MOSTLY_Q2_0, " 2.25 bpw quantization (group 64)"),
    ("Q4_0", F.MOSTLY_Q4_0, " 4.34G, +0.4685 ppl @ Llama-3-8B"),
    ("Q4_1", F.MOSTLY_Q4_1, " 4.78G, +0.4511 ppl @ Llama-3-8B"),
    ("MXFP4_MOE", F.MOSTLY_MXFP4_MOE, " MXFP4 MoE"),
    ("Q5_0", F.MOSTLY_Q5_0, " 5.21G, +0.1316 ppl @ Llama-3-8B"),
    ("Q5_1", F.MOSTLY_Q5_1, " 5.65G, +0.1062 ppl @ Llama-3-8B"),
    ("IQ2_XXS", F.MOSTLY_IQ2_XXS, " 2.06 bpw quantization"),
    ("IQ2_XS", F.MOSTLY_IQ2_XS, " 2.31 bpw quantization"),
    ("IQ2_S", F.MOSTLY_IQ2_S, " 2.5  bpw quantization"),
    ("IQ2_M", F.MOSTLY_IQ2_M, " 2.7  bpw quantization"),
    ("IQ1_S", F.MOSTLY_IQ1_S, " 1.56 bpw quantization"),
    ("IQ1_M", F.MOSTLY_IQ1_M, " 1.75 bpw quantization"),
    ("TQ1_0", F.MOSTLY_TQ1_0, " 1.69 bpw ternarization"),
    ("TQ2_0", F.MOSTLY_TQ2_0, " 2.06 bpw ternarization"),
    ("Q2_K", F.MOSTLY_Q2_K, " 2.96G, +3.5199 ppl @ Llama-3-8B"),
    ("Q2_K_S", F.MOSTLY_Q2_K_S, " 2.96G, +3.1836 ppl @ Llama-3-8B"),
    ("IQ3_XXS", F.MOSTLY_IQ3_XXS, " 3.06 bpw quantization"),
    ("IQ3_S", F.MOSTLY_IQ3_S, " 3.44 bpw quantization"),
    ("IQ3_M", F.MOSTLY_IQ3_M, " 3.66 bpw quantization mix"),
    ("Q3_K", F.MOSTLY_Q3_K_M, "alias for Q3_K_M"),
    ("IQ3_XS", F.MOSTLY_IQ3_XS, " 3.3 bpw quantization"),
    ("Q3_K_S", F.MOSTLY_Q3_K_S, " 3.41G, +1.6321 ppl @ Llama-3-8B"),
    ("Q3_K_M", F.MOSTLY_Q3_K_M, " 3.74G, +0.6569 ppl @ Llama-3-8B"),
    ("Q3_K_L", F.MOSTLY_Q3_K_L, " 4.03G, +0.5562 ppl @ Llama-3-8B"),
    ("IQ4_NL", F.MOSTLY_IQ4_NL, " 4.50 bpw non-linear quantization"),
    ("IQ4_XS", F.MOSTLY_IQ4_XS, " 4.25 bpw non-linear quantization"),
    ("Q4_K", F.MOSTLY_Q4_K_M, "alias for Q4_K_M"),
    ("Q4_K_S", F.MOSTLY_Q4_K_S, " 4.37G, +0.2689 ppl @ Llama-3-8B"),
    ("Q4_K_M", F.MOSTLY_Q4_K_M, " 4.58G, +0.1754 ppl @ Llama-3-8B"),
    ("Q5_K", F.MOSTLY_Q5_K_M, "alias for Q5_K_M"),
    ("Q5_K_S", F.MOSTLY_Q5_K_S, " 5.21G, +0.1049 ppl @ Llama-3-8B"),
    ("Q5_K_M", F.MOSTLY_Q5_K_M, " 5.33G, +0.0569 ppl @ Llama-3-8B"),
    ("Q6_K", F.MOSTLY_Q6_K, " 6.14G, +0.0217 ppl @ Llama-3-8B"),
    ("Q8_0", F.MOSTLY_Q8_0, " 7.96G, +0.0026 ppl @ Llama-3-8B"),
    ("F16", F.MOSTLY_F16, "14.00G, +0.0020 ppl @ Mistral-7B"),
    ("BF16", F.MOSTLY_BF16, "14.00G, -0.0050 ppl @ Mistral-7B"),
    ("F32", F.ALL_F32, "26.00G              @ 7B"),
    ("COPY", F.ALL_F32, "only copy tensors, no quantizing"),
))

T = GGMLType

# llama_ftype_get_default_type
_DEFAULT_TYPE: dict[LlamaFType, GGMLType] = {
    F.MOSTLY_Q4_0: T.Q4_0, F.MOSTLY_Q4_1: T.Q4_1, F.MOSTLY_Q5_0: T.Q5_0, F.MOSTLY_Q5_1: T.Q5_1,
    F.MOSTLY_Q8_0: T.Q8_0, F.MOSTLY_F16: T.F16, F.MOSTLY_BF16: T.BF16, F.ALL_F32: T.F32,
    F.MOSTLY_Q1_0: T.Q1_0, F.MOSTLY_Q2_0: T.Q2_0, F.MOSTLY_MXFP4_MOE: T.MXFP4,
    F.MOSTLY_Q2_K_S: T.Q2_K, F.MOSTLY_Q2_K: T.Q2_K, F.MOSTLY_IQ3_XS: T.IQ3_S,
    F.MOSTLY_Q3_K_S: T.Q3_K, F.MOSTLY_Q3_K_M: T.Q3_K, F.MOSTLY_Q3_K_L: T.Q3_K,
    F.MOSTLY_Q4_K_S: T.Q4_K, F.MOSTLY_Q4_K_M: T.Q4_K, F.MOSTLY_Q5_K_S: T.Q5_K, F.MOSTLY_Q5_K_M: T.Q5_K,
    F.MOSTLY_Q6_K: T.Q6_K, F.MOSTLY_TQ1_0: T.TQ1_0, F.MOSTLY_TQ2_0: T.TQ2_0,
    F.MOSTLY_IQ2_XXS: T.IQ2_XXS, F.MOSTLY_IQ2_XS: T.IQ2_XS, F.MOSTLY_IQ2_S: T.IQ2_XS, F.MOSTLY_IQ2_M: T.IQ2_S,
    F.MOSTLY_IQ3_XXS: T.IQ3_XXS, F.MOSTLY_IQ1_S: T.IQ1_S, F.MOSTLY_IQ1_M: T.IQ1_M,
    F.MOSTLY_IQ4_NL: T.IQ4_NL, F.MOSTLY_IQ4_XS: T.IQ4_XS, F.MOSTLY_IQ3_S: T.IQ3_S, F.MOSTLY_IQ3_M: T.IQ3_S,
}

# the file type llama.cpp's loader guesses from a model's most common tensor type (for COPY)
_GUESSED_FTYPE: dict[GGMLType, LlamaFType] = {
    T.F32: F.ALL_F32, T.F16: F.MOSTLY_F16, T.BF16: F.MOSTLY_BF16, T.Q4_0: F.MOSTLY_Q4_0, T.Q4_1: F.MOSTLY_Q4_1,
    T.Q5_0: F.MOSTLY_Q5_0, T.Q5_1: F.MOSTLY_Q5_1, T.Q8_0: F.MOSTLY_Q8_0, T.Q2_K: F.MOSTLY_Q2_K,
    T.Q3_K: F.MOSTLY_Q3_K_M, T.Q4_K: F.MOSTLY_Q4_K_M, T.Q5_K: F.MOSTLY_Q5_K_M, T.Q6_K: F.MOSTLY_Q6_K,
    T.TQ1_0: F.MOSTLY_TQ1_0, T.TQ2_0: F.MOSTLY_TQ2_0, T.IQ2_XXS: F.MOSTLY_IQ2_XXS, T.IQ2_XS: F.MOSTLY_IQ2_XS,
    T.IQ2_S: F.MOSTLY_IQ2_S, T.IQ3_XXS: F.MOSTLY_IQ3_XXS, T.IQ1_S: F.MOSTLY_IQ1_S, T.IQ1_M: F.MOSTLY_IQ1_M,
    T.IQ4_NL: F.MOSTLY_IQ4_NL, T.IQ4_XS: F.MOSTLY_IQ4_XS, T.IQ3_S: F.MOSTLY_IQ3_S, T.NVFP4: F.MOSTLY_NVFP4,
    T.Q1_0: F.MOSTLY_Q1_0, T.Q2_0: F.MOSTLY_Q2_0,
}


def parse_file_type(text: str) -> FileType | None:
    """llama-quantize's ``try_parse_ftype``: a name of FILE_TYPES in any case, or an ftype number."""
    for file_type in FILE_TYPES:
        if file_type.name.lower() == text.lower():
            return file_type
    number = parse_leading_int(text)
    for file_type in FILE_TYPES:
        if number is not None and file_type.ftype == number:
            return file_type
    return None


def parse_leading_int(text: str) -> int | None:
    """The integer at the start of ``text`` as std::stoi and atoi read it (blanks, a sign, digits), or None."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else None


def parse_ggml_type(text: str) -> GGMLType | None:
    """A ggml tensor type by name, in any case (``q8_0``, ``Q6_K``, ``bf16``), as ``parse_ggml_type``."""
    for ggml_type in GGMLType:
        if ggml_type.name.lower() == text.lower():
            return ggml_type
    return None


def _block_size(ggml_type: GGMLType) -> int:
    return GGML_QUANT_SIZES[ggml_type][0]


def _is_quantized(ggml_type: GGMLType) -> bool:
    return _block_size(ggml_type) > 1


# --------------------------------------------------------------------------------------------------
# --override-kv


@dataclass(frozen=True)
class KVOverride:
    """One ``--override-kv KEY=TYPE:VALUE``, as the GGUF key-value pair it writes."""

    key: str
    value: Any
    type: GGUFValueType


def parse_kv_override(text: str) -> KVOverride:
    """``string_parse_kv_override``: ``int:`` (written as UINT32 of the absolute value, as
    llama-quantize writes it), ``float:`` (FLOAT32), ``bool:true|false``, ``str:`` (at most 127 bytes)."""
    key, sep, rest = text.partition("=")
    if not sep or len(key.encode()) >= 128:
        raise ValueError(f"malformed KV override {text!r}: KEY=TYPE:VALUE")
    if rest.startswith("int:"):
        value = parse_leading_int(rest[4:]) or 0
        return KVOverride(key, abs(value) & 0xFFFFFFFF, GGUFValueType.UINT32)
    if rest.startswith("float:"):
        match = re.match(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf(inity)?|nan)", rest[6:], re.I)
        number = float(match.group(0)) if match else 0.0
        return KVOverride(key, float(np.float32(number)), GGUFValueType.FLOAT32)
    if rest.startswith("bool:"):
        if rest[5:] not in ("true", "false"):
            raise ValueError(f"invalid boolean value for KV override {text!r}")
        return KVOverride(key, rest[5:] == "true", GGUFValueType.BOOL)
    if rest.startswith("str:"):
        if len(rest[4:].encode()) > 127:
            raise ValueError(f"malformed KV override {text!r}: the value cannot exceed 127 bytes")
        return KVOverride(key, rest[4:], GGUFValueType.STRING)
    raise ValueError(f"invalid type for KV override {text!r}: int:, float:, bool: or str:")


# --------------------------------------------------------------------------------------------------
# importance matrices


@dataclass
class Imatrix:
    """An importance matrix as llama-quantize uses it: per tensor name, the normalised weights (one
    per column, times the number of experts), the datasets it was computed on and its chunk count."""

    path: str
    entries: dict[str, np.ndarray]
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0


def load_imatrix(path: str, include: list[str] = (), exclude: list[str] = ()) -> Imatrix:
    """Read a llama-imatrix file (GGUF, or else the legacy format), normalise it (sums divided by
    counts) and keep the entries whose names contain an ``include`` string / drop those that contain
    an ``exclude`` string (``--include-weights`` / ``--exclude-weights``)."""
    stored = read_imatrix(path)
    entries = {}
    for name, (sums, counts) in stored.entries.items():
        if stored.legacy:  # the mean squares times ncall
            ncall = np.float32(counts[0])
            entries[name] = (sums / ncall).astype(np.float32) if ncall > 0 else sums.copy()
            continue
        per_expert = sums.reshape(len(counts), -1)
        scaled = per_expert / np.where(counts > 0, counts, 1).astype(np.float32)[:, None]
        entries[name] = np.where(counts[:, None] > 0, scaled, np.float32(1)).astype(np.float32).reshape(-1)
    imatrix = Imatrix(str(path), entries, stored.datasets, stored.chunk_count)
    for name in exclude:
        imatrix.entries = {key: value for key, value in imatrix.entries.items() if name not in key}
    if include:
        imatrix.entries = {key: value for key, value in imatrix.entries.items() if any(n in key for n in include)}
    return imatrix


# --------------------------------------------------------------------------------------------------
# which type for which tensor (llama-quant.cpp)


class _Category(IntEnum):
    TOKEN_EMBD = 0
    ATTENTION_Q = 1
    ATTENTION_V = 2
    ATTENTION_K = 3
    ATTENTION_QKV = 4
    ATTENTION_KV_B = 5
    ATTENTION_OUTPUT = 6
    FFN_UP = 7
    FFN_GATE = 8
    FFN_DOWN = 9
    OUTPUT = 10
    OTHER = 11


_TOKEN_EMBD_NAMES = ("token_embd.weight", "per_layer_token_embd.weight")
_CATEGORY_SUBSTRINGS = (  # tensor_get_category's tests after the exact names, in its order
    ("attn_qkv.weight", _Category.ATTENTION_QKV), ("attn_kv_b.weight", _Category.ATTENTION_KV_B),
    ("attn_v.weight", _Category.ATTENTION_V), ("attn_k.weight", _Category.ATTENTION_K),
    ("attn_q.weight", _Category.ATTENTION_Q), ("attn_output.weight", _Category.ATTENTION_OUTPUT),
    ("ffn_up", _Category.FFN_UP), ("ffn_gate", _Category.FFN_GATE), ("ffn_down", _Category.FFN_DOWN),
)
_ATTN_V_LIKE = (_Category.ATTENTION_V, _Category.ATTENTION_QKV, _Category.ATTENTION_KV_B)


def _category(name: str) -> _Category:
    if name == "output.weight":
        return _Category.OUTPUT
    if name in _TOKEN_EMBD_NAMES:
        return _Category.TOKEN_EMBD
    return next((category for part, category in _CATEGORY_SUBSTRINGS if part in name), _Category.OTHER)


# tensor_allows_quantization: substrings that keep a tensor as it is
_NEVER_QUANTIZED = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
    "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
    *(f"time_mix_{part}.weight" for part in (
        "first", "w0", "w1", "w2", "v0", "v1", "v2", "a0", "a1", "a2", "g1", "g2", "decay_w1", "decay_w2",
        "lerp_fused")),
    "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
    ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
)
_GLM5_NEXT_KEPT = (
    "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate", "indexer_compressor_ape",
    "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight", "ssm_g_b.weight", "ssm_beta.weight",
    "attn_kv_a_mqa.weight", "attn_k_b.weight", "attn_v_b.weight",
)
_LAYER = re.compile(r"blk\.\s*([+-]?\d+)")


def _layer_of(name: str) -> int | None:
    """``sscanf(name, "blk.%d.", &layer)``'s layer, or None."""
    match = _LAYER.match(name)
    return int(match.group(1)) if match else None


def _n_dims(info: TensorInfo) -> int:
    """ggml_n_dims: the dimensions up to the last one larger than 1 (at least one)."""
    return max((i + 1 for i, d in enumerate(info.ne) if d > 1), default=1)


@dataclass(frozen=True)
class _HParams:
    """The hyperparameters llama_tensor_get_type reads (llama.cpp's ``load_hparams``)."""

    arch: str
    n_layer: int
    n_head: int
    n_head_kv: int
    n_expert: int

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], overrides: list[KVOverride]) -> _HParams:
        values = {**metadata, **{o.key: o.value for o in overrides}}  # the loader reads overridden values
        arch = values.get("general.architecture")
        if not isinstance(arch, str):
            raise LLMCoreError("the model has no general.architecture")

        def number(key: str, default: int | None = None) -> int:
            value = values.get(f"{arch}.{key}", default)
            if isinstance(value, np.ndarray):
                value = int(value[0]) if value.size else default
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise LLMCoreError(f"the model's {arch}.{key} is missing or not a number")
            return int(value)

        n_head = number("attention.head_count", 0)
        return cls(arch, number("block_count"), n_head, number("attention.head_count_kv", n_head),
                   number("expert_count", 0))

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0

    @property
    def is_70b(self) -> bool:
        """llama.cpp's LLM_TYPE_70B (its only model size that changes a type choice)."""
        if self.arch == "llama":
            return self.n_expert != 8 and self.n_layer == 80 and self.n_head != self.n_head_kv
        return {"deci": 80, "olmo": 80, "qwen2": 80, "jais2": 68}.get(self.arch) == self.n_layer


@dataclass
class QuantizeOptions:
    """``llama_model_quantize_params``: what llama-quantize's flags set."""

    file_type: FileType
    allow_requantize: bool = False
    quantize_output_tensor: bool = True  # --leave-output-tensor clears it
    pure: bool = False
    output_tensor_type: GGMLType | None = None
    token_embedding_type: GGMLType | None = None
    tensor_types: list[tuple[str, GGMLType]] = field(default_factory=list)  # --tensor-type NAME_REGEX=TYPE
    imatrix: Imatrix | None = None
    kv_overrides: list[KVOverride] = field(default_factory=list)
    n_threads: int = 0  # <= 0: every CPU

    @property
    def only_copy(self) -> bool:
        return self.file_type.name == "COPY"


class _TypeChooser:
    """``quantize_state_impl`` and ``llama_tensor_get_type``: the counters it keeps while it walks the
    tensors in order, and the per-tensor choice."""

    def __init__(self, options: QuantizeOptions, hparams: _HParams, names: list[str]) -> None:
        self.options = options
        self.ftype = options.file_type.ftype
        self.hp = hparams
        self.patterns = [(re.compile(pattern), ggml_type) for pattern, ggml_type in options.tensor_types]
        self.has_imatrix = options.imatrix is not None
        self.n_attention_wv = sum(_category(name) in _ATTN_V_LIKE for name in names)
        self.has_tied_embeddings = "output.weight" not in names
        self.n_ffn_down = self.n_ffn_gate = self.n_ffn_up = hparams.n_layer
        self.i_attention_wv = self.i_ffn_down = self.i_ffn_gate = self.i_ffn_up = 0
        self.n_fallback = 0
        self.warnings: list[str] = []

    def allows_quantization(self, info: TensorInfo) -> bool:
        """tensor_allows_quantization"""
        name = info.name
        if self.options.only_copy or _n_dims(info) < 2 or not name.endswith("weight"):
            return False
        if any(part in name for part in _NEVER_QUANTIZED):
            return False
        if name in ("position_embd.weight", "token_types.weight"):
            return False
        if name == "output.weight" and not self.options.quantize_output_tensor:
            return False
        return not (self.hp.arch == "glm5-next" and any(part in name for part in _GLM5_NEXT_KEPT))

    def choose(self, info: TensorInfo) -> GGMLType:
        """llama_tensor_get_type for a tensor that allows quantization."""
        options, category = self.options, _category(info.name)
        if options.token_embedding_type is not None and category == _Category.TOKEN_EMBD:
            named = info.name == "per_layer_token_embd.weight" and any(p.search(info.name) for p, _ in self.patterns)
            if not named:
                return options.token_embedding_type
        if options.output_tensor_type is not None and category == _Category.OUTPUT:
            return options.output_tensor_type
        new_type = _DEFAULT_TYPE[self.ftype]
        if not _is_quantized(new_type):
            return new_type
        manual = False
        for pattern, ggml_type in self.patterns:
            if pattern.search(info.name):
                if ggml_type != new_type:
                    self.warnings.append(f"{info.name}: applying manual override: {new_type.name} -> {ggml_type.name}")
                new_type, manual = ggml_type, True
                break
        if not manual and not options.pure:
            new_type = self._mixture(new_type, info, category)
        return self._fallback(info, new_type)

    def _fallback(self, info: TensorInfo, target: GGMLType) -> GGMLType:
        """tensor_type_fallback: a type whose block divides the row, when the chosen one's does not."""
        ncols, block = info.ne[0], _block_size(target)
        if ncols % block == 0:
            return target
        self.n_fallback += 1
        if target in (T.IQ1_S, T.IQ1_M, T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ3_XXS, T.IQ3_S, T.IQ4_XS):
            result = T.IQ4_NL
        elif target in (T.Q2_0, T.Q2_K, T.Q3_K, T.TQ1_0, T.TQ2_0):
            result = T.Q4_0
        elif target in (T.Q4_K, T.Q5_K, T.Q6_K):
            result = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}[target]
        elif block <= 32:
            result = target
        else:
            raise LLMCoreError(f"no tensor type fallback is defined for type {target.name}")
        if ncols % _block_size(result):
            result = T.F16  # the row is not even a multiple of 32
        self.warnings.append(f"{info.name}: ncols {ncols} not divisible by {block} (required for type "
                             f"{target.name}) -> falling back to {result.name}")
        return result

    def _layer_info(self, i_layer: int, n_layer: int, name: str) -> tuple[int, int]:
        if self.hp.n_expert > 1:  # experts' tensors are not consecutive: the layer is in the name
            layer = _layer_of(name)
            if layer is None:
                raise LLMCoreError(f"failed to determine layer for tensor {name}")
            if not 0 <= layer < n_layer:
                raise LLMCoreError(f"bad layer {layer} for tensor {name}; must be in [0, {n_layer})")
            i_layer = layer
        return i_layer, n_layer

    def _mixture(self, new_type: GGMLType, info: TensorInfo, category: _Category) -> GGMLType:  # noqa: C901
        """llama_tensor_get_type_impl, branch for branch."""
        ftype, hp, name, arch = self.ftype, self.hp, info.name, self.hp.arch
        n_expert = hp.n_expert

        def use_more_bits(i_layer: int, n_layers: int) -> bool:
            return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2

        if arch == "glm5-next" and any(part in name for part in ("attn_q_a", "attn_q_b", "nextn.eh_proj")):
            if new_type not in (T.F32, T.BF16, T.F16):
                return T.Q8_0
        iq_low = (F.MOSTLY_IQ2_XXS, F.MOSTLY_IQ2_XS, F.MOSTLY_IQ1_S, F.MOSTLY_IQ2_S, F.MOSTLY_IQ2_M, F.MOSTLY_IQ1_M)
        iq2_s_m = (F.MOSTLY_IQ2_S, F.MOSTLY_IQ2_M)
        if category == _Category.OUTPUT or (self.has_tied_embeddings and category == _Category.TOKEN_EMBD):
            if self.options.output_tensor_type is not None:
                new_type = self.options.output_tensor_type
            elif ftype == F.MOSTLY_MXFP4_MOE:
                new_type = T.Q8_0
            elif arch == "falcon" or info.ne[0] % _block_size(new_type) != 0:
                new_type = T.Q8_0
            elif ftype in (*iq_low, F.MOSTLY_IQ3_XXS):
                new_type = T.Q5_K
            elif new_type != T.Q8_0:
                new_type = T.Q6_K
        elif ftype == F.MOSTLY_MXFP4_MOE:
            is_expert = category in (_Category.FFN_UP, _Category.FFN_GATE, _Category.FFN_DOWN)
            ne2 = info.ne[2] if len(info.ne) > 2 else 1
            new_type = T.MXFP4 if ne2 > 1 and (arch != "bailingmoe3" or is_expert) else T.Q8_0
        elif category == _Category.TOKEN_EMBD:
            if self.options.token_embedding_type is not None:
                new_type = self.options.token_embedding_type
            elif ftype in (F.MOSTLY_IQ2_XXS, F.MOSTLY_IQ2_XS, F.MOSTLY_IQ1_S, F.MOSTLY_IQ1_M):
                new_type = T.Q2_K
            elif ftype in (*iq2_s_m, F.MOSTLY_IQ3_XXS):
                new_type = T.IQ3_S
            elif ftype in (F.MOSTLY_TQ1_0, F.MOSTLY_TQ2_0, F.MOSTLY_Q2_0):
                new_type = T.Q4_K
        elif ftype in iq_low:
            if category in _ATTN_V_LIKE:
                if hp.n_gqa >= 4 or n_expert >= 4:
                    new_type = T.Q4_K
                else:
                    new_type = T.IQ3_S if ftype in iq2_s_m else T.Q2_K
                self.i_attention_wv += 1
            elif n_expert == 8 and category == _Category.ATTENTION_K:
                new_type = T.Q4_K
            elif category == _Category.FFN_DOWN:
                if self.i_ffn_down < self.n_ffn_down // 8:
                    new_type = T.IQ3_S if ftype in iq2_s_m else T.Q2_K
                self.i_ffn_down += 1
            elif category == _Category.ATTENTION_OUTPUT:
                if n_expert == 8:
                    new_type = T.Q5_K
                elif ftype in (F.MOSTLY_IQ1_S, F.MOSTLY_IQ1_M):
                    new_type = T.IQ2_XXS
                elif ftype in iq2_s_m:
                    new_type = T.IQ3_S
        elif category in _ATTN_V_LIKE:
            if ftype == F.MOSTLY_Q2_K:
                new_type = T.Q4_K if hp.n_gqa >= 4 else T.Q3_K
            elif ftype == F.MOSTLY_Q2_K_S and hp.n_gqa >= 4:
                new_type = T.Q4_K
            elif ftype == F.MOSTLY_IQ3_XXS:
                new_type = T.Q4_K if hp.n_gqa >= 4 else T.IQ3_S if not self.has_imatrix else T.IQ3_XXS
            elif ftype in (F.MOSTLY_IQ3_XS, F.MOSTLY_IQ3_S) and hp.n_gqa >= 4:
                new_type = T.Q4_K
            elif ftype == F.MOSTLY_IQ3_M:
                new_type = T.Q4_K
            elif ftype == F.MOSTLY_Q3_K_M:
                new_type = T.Q5_K if self.i_attention_wv < 2 else T.Q4_K
            elif ftype == F.MOSTLY_Q3_K_L:
                new_type = T.Q5_K
            elif ftype in (F.MOSTLY_IQ4_NL, F.MOSTLY_IQ4_XS) and hp.n_gqa >= 4:
                new_type = T.Q5_K
            elif ftype in (F.MOSTLY_Q4_K_M, F.MOSTLY_Q5_K_M) \
                    and use_more_bits(self.i_attention_wv, self.n_attention_wv):
                new_type = T.Q6_K
            elif ftype == F.MOSTLY_Q4_K_S and self.i_attention_wv < 4:
                new_type = T.Q5_K
            if hp.is_70b and new_type in (T.Q3_K, T.Q4_K):
                new_type = T.Q5_K
            if n_expert == 8:
                new_type = T.Q8_0
            self.i_attention_wv += 1
        elif category == _Category.ATTENTION_K:
            if n_expert == 8:
                new_type = T.Q8_0
            elif ftype == F.MOSTLY_IQ3_XS:
                new_type = T.IQ3_XXS
            elif ftype == F.MOSTLY_IQ3_XXS:
                new_type = T.IQ2_S
        elif category == _Category.ATTENTION_Q:
            if ftype == F.MOSTLY_IQ3_XS:
                new_type = T.IQ3_XXS
            elif ftype == F.MOSTLY_IQ3_XXS:
                new_type = T.IQ2_S
        elif category == _Category.FFN_DOWN:
            i_layer, n_layer = self._layer_info(self.i_ffn_down, self.n_ffn_down, name)
            if ftype == F.MOSTLY_Q2_K:
                new_type = T.Q3_K
            elif ftype == F.MOSTLY_Q2_K_S:
                if i_layer < n_layer // 8:
                    new_type = T.Q4_K
            elif ftype == F.MOSTLY_IQ3_XXS and not self.has_imatrix:
                new_type = T.Q4_K if i_layer < n_layer // 8 else T.Q3_K
            elif ftype == F.MOSTLY_Q3_K_M:
                new_type = (T.Q5_K if i_layer < n_layer // 16
                            else T.Q4_K if arch != "falcon" or use_more_bits(i_layer, n_layer) else T.Q3_K)
            elif ftype == F.MOSTLY_IQ3_M and (i_layer < n_layer // 8
                                              or (n_expert == 8 and use_more_bits(i_layer, n_layer))):
                new_type = T.Q4_K
            elif ftype == F.MOSTLY_Q3_K_L:
                new_type = T.Q4_K if arch == "falcon" else T.Q5_K
            elif ftype == F.MOSTLY_Q4_K_M:
                if arch == "falcon":
                    new_type = (T.Q6_K if i_layer < n_layer // 16
                                else T.Q5_K if use_more_bits(i_layer, n_layer) else T.Q4_K)
                elif use_more_bits(i_layer, n_layer):
                    new_type = T.Q6_K
            elif (i_layer < n_layer // 8 and ftype in (F.MOSTLY_IQ4_NL, F.MOSTLY_IQ4_XS)
                  and not self.has_imatrix):
                new_type = T.Q5_K
            elif ftype == F.MOSTLY_Q5_K_M and use_more_bits(i_layer, n_layer):
                new_type = T.Q6_K
            elif ftype == F.MOSTLY_Q4_K_S and arch != "falcon" and i_layer < n_layer // 8:
                new_type = T.Q5_K
            elif ftype in (F.MOSTLY_Q4_0, F.MOSTLY_Q5_0) and self.has_imatrix and i_layer < n_layer // 8:
                new_type = T.Q4_1 if ftype == F.MOSTLY_Q4_0 else T.Q5_1
            self.i_ffn_down += 1
        elif category == _Category.ATTENTION_OUTPUT:
            if arch != "falcon":
                if n_expert == 8:
                    if ftype in (F.MOSTLY_Q2_K, F.MOSTLY_IQ3_XS, F.MOSTLY_IQ3_XXS, F.MOSTLY_Q3_K_S, F.MOSTLY_Q3_K_M,
                                 F.MOSTLY_IQ4_NL, F.MOSTLY_Q4_K_S, F.MOSTLY_Q4_K_M, F.MOSTLY_IQ3_S, F.MOSTLY_IQ3_M,
                                 F.MOSTLY_IQ4_XS):
                        new_type = T.Q5_K
                else:
                    new_type = {F.MOSTLY_Q2_K: T.Q3_K, F.MOSTLY_IQ3_XXS: T.IQ3_S, F.MOSTLY_Q3_K_M: T.Q4_K,
                                F.MOSTLY_Q3_K_L: T.Q5_K, F.MOSTLY_IQ3_M: T.Q4_K}.get(ftype, new_type)
            elif ftype == F.MOSTLY_Q3_K_L:
                new_type = T.Q4_K
        elif category == _Category.ATTENTION_QKV:  # unreachable in llama.cpp too: QKV counts as attention V above
            if ftype in (F.MOSTLY_Q3_K_M, F.MOSTLY_Q3_K_L, F.MOSTLY_IQ3_M):
                new_type = T.Q4_K
            elif ftype == F.MOSTLY_Q4_K_M:
                new_type = T.Q5_K
            elif ftype == F.MOSTLY_Q5_K_M:
                new_type = T.Q6_K
        elif category in (_Category.FFN_GATE, _Category.FFN_UP):
            up = category == _Category.FFN_UP
            i_layer, n_layer = self._layer_info(self.i_ffn_up if up else self.i_ffn_gate, self.hp.n_layer, name)
            if ftype == F.MOSTLY_IQ3_XS and n_layer // 8 <= i_layer < 7 * n_layer // 8:
                new_type = T.IQ3_XXS
            if up:
                self.i_ffn_up += 1
            else:
                self.i_ffn_gate += 1
        return new_type


def _requires_imatrix(name: str, target: GGMLType, ftype: LlamaFType) -> bool:
    """tensor_requires_imatrix"""
    if name in _TOKEN_EMBD_NAMES or name == "output.weight":
        return False
    if target in (T.IQ3_XXS, T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ1_M, T.IQ1_S):
        return True
    return target == T.Q2_K and ftype == F.MOSTLY_Q2_K_S


# --------------------------------------------------------------------------------------------------
# the plan and the file


@dataclass
class TensorPlan:
    """One tensor of the output: where its data comes from, its type there, and its imatrix."""

    source: TensorInfo
    type: GGMLType
    imatrix: np.ndarray | None = None

    @property
    def quantize(self) -> bool:
        return self.type != self.source.type

    @property
    def n_bytes(self) -> int:
        return row_bytes(self.type, self.source.shape[-1]) * (self.source.n_elements // self.source.shape[-1])

    def output_info(self, offset: int) -> TensorInfo:
        info = self.source
        return TensorInfo(info.name, self.type, info.shape, info.n_elements, self.n_bytes, offset)


@dataclass
class QuantizePlan:
    """What llama-quantize would write: the output's metadata, its tensors in order, and the notes
    (fallbacks, manual overrides, tensors without imatrix data) it would print."""

    metadata: Metadata
    tensors: list[TensorPlan]
    ftype: int
    warnings: list[str] = field(default_factory=list)

    def output(self, path: str) -> GGUFOutput:
        infos, offset = [], 0
        for tensor in self.tensors:
            infos.append(tensor.output_info(offset))
            offset += tensor.n_bytes + -tensor.n_bytes % DEFAULT_ALIGNMENT
        return GGUFOutput(path, self.metadata, infos)

    @property
    def source_bytes(self) -> int:
        return sum(tensor.source.n_bytes for tensor in self.tensors)

    @property
    def output_bytes(self) -> int:
        return sum(tensor.n_bytes for tensor in self.tensors)


def _set(metadata: Metadata, key: str, value: Any, vtype: GGUFValueType) -> None:
    """gguf_set_val: remove the key, then append it."""
    metadata[:] = [entry for entry in metadata if entry[0] != key]
    metadata.append((key, value, vtype))


def _weight_order(name: str) -> tuple[int, bytes]:
    """llama_model_loader::weight_name_comparer: by ``blk.N.`` layer (-1 for none), then by name."""
    layer = _layer_of(name)
    return (-1 if layer is None else layer), name.encode()


def plan_quantization(reader: GGUFReader, options: QuantizeOptions) -> QuantizePlan:
    """Decide every tensor's type, and the output's metadata, as llama_model_quantize_impl does."""
    from llmcore.quants import TARGET_TYPES, can_convert

    imatrix = options.imatrix
    if imatrix is not None and not imatrix.entries:
        options = QuantizeOptions(**{**options.__dict__, "imatrix": None})  # every entry excluded: none
        imatrix = None
    if imatrix is not None:
        for name, values in imatrix.entries.items():
            if not np.isfinite(values).all():
                raise LLMCoreError(f"imatrix contains non-finite value (entry {name})")
    ftype: int = options.file_type.ftype
    if options.only_copy:
        ftype = _model_ftype(reader)
    hparams = _HParams.from_metadata(reader.metadata, options.kv_overrides)
    infos = sorted(reader.tensors.values(), key=lambda info: _weight_order(info.name))
    chooser = _TypeChooser(options, hparams, [info.name for info in infos])

    metadata: Metadata = [(key, value, reader.metadata_types[key]) for key, value in reader.metadata.items()]
    _set(metadata, "general.quantization_version", QUANTIZATION_VERSION, GGUFValueType.UINT32)
    _set(metadata, "general.file_type", ftype, GGUFValueType.UINT32)
    metadata = [entry for entry in metadata if entry[0] not in (KEY_SPLIT_NO, KEY_SPLIT_COUNT, KEY_SPLIT_TENSORS_COUNT)]
    overrides = list(options.kv_overrides)
    if imatrix is not None:
        overrides.append(KVOverride("quantize.imatrix.file", _c_string(imatrix.path), GGUFValueType.STRING))
        if imatrix.datasets:
            overrides.append(KVOverride("quantize.imatrix.dataset", _c_string(imatrix.datasets[0]),
                                        GGUFValueType.STRING))
        overrides.append(KVOverride("quantize.imatrix.entries_count", len(imatrix.entries), GGUFValueType.UINT32))
        if imatrix.chunk_count > 0:
            overrides.append(KVOverride("quantize.imatrix.chunks_count", imatrix.chunk_count, GGUFValueType.UINT32))
    for override in overrides:
        _set(metadata, override.key, override.value, override.type)

    plans = []
    for info in infos:
        target = chooser.choose(info) if chooser.allows_quantization(info) else info.type
        if options.imatrix is None and chooser.allows_quantization(info) \
                and _requires_imatrix(info.name, target, options.file_type.ftype):
            raise LLMCoreError(f"this quantization requires an importance matrix (--imatrix): tensor "
                               f"{info.name} would be {target.name}")
        plans.append(TensorPlan(info, target))
    warnings = chooser.warnings
    for plan in plans:
        if not plan.quantize:
            continue
        info = plan.source
        if imatrix is not None:
            values = imatrix.entries.get(info.name)
            ne = info.ne
            expected = ne[0] * (ne[2] if len(ne) > 2 else 1)
            if values is None:
                warnings.append(f"did not find imatrix weights for {info.name}")
            elif values.size == expected:
                plan.imatrix = values
            elif info.name not in _TOKEN_EMBD_NAMES:
                raise LLMCoreError(f"imatrix size {values.size} is different from tensor size {expected} "
                                   f"for {info.name}")
        if plan.imatrix is None and _requires_imatrix(info.name, plan.type, options.file_type.ftype):
            raise LLMCoreError(f"missing importance matrix for tensor {info.name} in a very low-bit quantization")
        if _is_quantized(info.type) and not options.allow_requantize:
            raise LLMCoreError(f"requantizing from type {info.type.name} is disabled (tensor {info.name}; "
                               "pass --allow-requantize)")
        if info.type not in (T.F32, T.F16, T.BF16) and not _is_quantized(info.type):
            raise LLMCoreError(f"cannot dequantize/convert tensor type {info.type.name} ({info.name})")
        if not can_convert(info.type):
            raise LLMCoreError(f"reading {info.type.name} tensors ({info.name}) is not supported yet")
        if plan.type not in TARGET_TYPES:
            raise LLMCoreError(f"quantizing to {plan.type.name} ({info.name}) is not supported yet")
    return QuantizePlan(metadata, plans, ftype, warnings)


def _c_string(text: str) -> str:
    """strncpy into llama_model_kv_override's 128-byte val_str: at most 127 bytes."""
    return text.encode()[:127].decode("utf-8", "ignore")


def _model_ftype(reader: GGUFReader) -> int:
    """llama_model_loader's ftype: ``general.file_type``, else guessed from the most common tensor type."""
    value = reader.metadata.get("general.file_type")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    counts: dict[GGMLType, int] = {}
    most, best = 0, GGMLType.F32
    for info in sorted(reader.tensors.values(), key=lambda info: _weight_order(info.name)):
        counts[info.type] = counts.get(info.type, 0) + 1
        if counts[info.type] > most:
            most, best = counts[info.type], info.type
    return _GUESSED_FTYPE.get(best, F.ALL_F32) | F.GUESSED


def _quantized_chunks(plan: TensorPlan, reader: GGUFReader, n_threads: int) -> Iterator[np.ndarray]:
    """The tensor's new bytes, slab by slab (whole rows, one expert's rows at most, at most 64 MiB of
    float32 at a time)."""
    from llmcore.quants import convert_rows, validate

    info = plan.source
    n_per_row = info.shape[-1]
    n_rows = info.n_elements // n_per_row
    rows_per_expert = info.ne[1] if len(info.ne) > 1 else 1
    raw = reader.raw(info.name).reshape(n_rows, -1)
    slab = max(1, _SLAB_VALUES // n_per_row)
    for expert_start in range(0, n_rows, rows_per_expert):
        expert = expert_start // rows_per_expert
        weights = None if plan.imatrix is None else plan.imatrix[expert * n_per_row:(expert + 1) * n_per_row]
        for start in range(expert_start, min(expert_start + rows_per_expert, n_rows), slab):
            stop = min(start + slab, expert_start + rows_per_expert, n_rows)
            out = convert_rows(info.type, raw[start:stop], n_per_row, plan.type, weights, n_threads=n_threads)
            if not validate(plan.type, out):
                raise LLMCoreError(f"quantized data validation failed ({info.name}: an inf or NaN scale)")
            yield out


def write_quantized(
    plan: QuantizePlan,
    reader: GGUFReader,
    path: str,
    *,
    n_threads: int = 0,
    progress: bool = True,
    on_tensor: Callable[[TensorPlan], None] | None = None,
) -> None:
    """Write the planned file to ``path`` (through ``path.tmp``, renamed when complete), with a
    progress bar where ``progress`` and stderr is a terminal."""
    n_threads = n_threads if n_threads > 0 else (os.cpu_count() or 1)
    output = plan.output(path)
    target = f"{path}.tmp"
    try:
        with open(target, "wb") as out, _progress_bar(plan.source_bytes, progress) as bar:
            out.write(output.header())
            for tensor in plan.tensors:
                bar.set_description(tensor.source.name)
                if tensor.quantize:
                    written = 0
                    for chunk in _quantized_chunks(tensor, reader, n_threads):
                        out.write(chunk.data)
                        written += chunk.nbytes
                    assert written == tensor.n_bytes, (tensor.source.name, written, tensor.n_bytes)
                else:
                    out.write(reader.raw(tensor.source.name).data)
                out.write(bytes(-tensor.n_bytes % DEFAULT_ALIGNMENT))
                bar.update(tensor.source.n_bytes)
                if on_tensor is not None:
                    on_tensor(tensor)
        os.replace(target, path)
    except BaseException:
        if os.path.exists(target):
            os.unlink(target)
        raise


class _NoBar:
    """What the writer calls on a progress bar, doing nothing (tqdm is not imported for it)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _progress_bar(total: int, progress: bool) -> Any:
    if not (progress and sys.stderr.isatty()):  # tqdm's disable=None would hide it too
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def size_summary(plan: QuantizePlan) -> str:
    """llama-quantize's closing lines: the model's and the result's sizes in MiB and bits per weight."""
    n_elements = sum(tensor.source.n_elements for tensor in plan.tensors) or 1
    lines = []
    for what, n_bytes in (("model size", plan.source_bytes), ("quant size", plan.output_bytes)):
        lines.append(f"{what}  = {n_bytes / 1024 / 1024:8.2f} MiB ({n_bytes * 8.0 / n_elements:.2f} BPW)")
    return "\n".join(lines)
