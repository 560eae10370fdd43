"""The Hugging Face architectures ``llmcore convert`` reads, as convert_hf_to_gguf.py converts them:
per ``config.json`` architecture, the GGUF architecture, its hyper-parameters (TextModel's common
ones or the model class's own), its vocabulary, how it rewrites tensors before gguf-py's name map
renames them, and the tensors it adds."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from llmcore.errors import LLMCoreError
from llmcore.tools.convert.vocab import (
    SpecialVocab,
    add_gpt2_vocab,
    add_internlm2_vocab,
    add_sentencepiece_vocab,
    add_wordpiece_vocab,
    phi3_sentencepiece_vocab,
    read_json,
    sentencepiece_vocab,
    tokenizer_config,
)


@dataclass(frozen=True)
class Checkpoint:
    """What the per-architecture steps read: the checkpoint's directory and its hyper-parameters
    (config.json over the defaults transformers' config class fills in)."""

    directory: Path
    hparams: dict[str, Any]

    def find(self, *keys: str) -> Any:
        """find_hparam(optional=True): the value of the first of ``keys`` the config has (even None)."""
        return next((self.hparams[k] for k in keys if k in self.hparams), None)

    @property
    def block_count(self) -> int:
        """TextModel's block_count: the first of the layer-count keys the config has."""
        count = self.find("n_layers", "num_hidden_layers", "n_layer", "num_layers")
        if count is None:
            raise LLMCoreError(f"{self.directory / 'config.json'}: no num_hidden_layers "
                               "(nor n_layer, n_layers, num_layers)")
        return count

    @property
    def rope(self) -> dict[str, Any]:
        """TextModel's rope_parameters: rope_parameters or rope_scaling, with the rope bases, the
        partial rotary factor and the original context mirrored into it from the config."""
        rope = dict(self.hparams.get("rope_parameters", self.hparams.get("rope_scaling")) or {})
        if "full_attention" in rope or "sliding_attention" in rope:
            return rope
        theta = self.find("global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base")
        local = self.find("local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta",
                          "rope_local_base_freq")
        partial = self.find("partial_rotary_factor", "rope_pct", "rope_percent")
        original = self.find("original_max_position_embeddings")
        if local is not None:
            rope["sliding_attention"] = {"rope_theta": local}
        if "rope_theta" not in rope and theta is not None:
            rope["rope_theta"] = theta
        if "rope_type" not in rope and rope.get("type") is not None:
            rope["rope_type"] = rope["type"]
        if "partial_rotary_factor" not in rope and partial is not None:
            rope["partial_rotary_factor"] = partial
        if "original_max_position_embeddings" not in rope and original is not None:
            rope["original_max_position_embeddings"] = original
        return rope


#: (HF name, tensor, checkpoint) -> the tensor convert_hf_to_gguf.py writes
TensorRewrite = Callable[[str, np.ndarray, Checkpoint], np.ndarray]


def text_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """TextModel.set_gguf_parameters, for the keys of the (dense) architectures llmcore converts."""
    h = ckpt.hparams
    kv.add_block_count(ckpt.block_count)
    if (n_ctx := ckpt.find("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
                           "model_max_length")) is not None:
        kv.add_context_length(n_ctx)
    if (n_embd := ckpt.find("hidden_size", "n_embd", "dim")) is not None:
        kv.add_embedding_length(n_embd)
    if (n_ff := ckpt.find("prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner",
                          "hidden_dim")) is not None:
        kv.add_feed_forward_length(n_ff)
    if (n_head := ckpt.find("num_attention_heads", "n_head", "n_heads")) is not None:
        kv.add_head_count(n_head)
    if (n_head_kv := ckpt.find("num_key_value_heads", "n_kv_heads")) is not None:
        kv.add_head_count_kv(n_head_kv)
    if h.get("is_causal") is False:
        kv.add_causal_attention(False)
    rope_all = ckpt.rope
    rope = rope_all.get("full_attention", rope_all)
    rope_type, factor = rope.get("rope_type"), rope.get("factor")
    if rope_type == "linear" and factor is not None:
        kv.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        kv.add_rope_scaling_factor(factor)
    elif rope_type == "yarn" and factor is not None:
        kv.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        kv.add_rope_scaling_factor(factor)
        kv.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
        if (ext := rope.get("extrapolation_factor")) is not None:
            kv.add_rope_scaling_yarn_ext_factor(ext)
        if (attn := rope.get("attention_factor", rope.get("attn_factor"))) is not None:
            kv.add_rope_scaling_yarn_attn_factor(attn)
        if (fast := rope.get("beta_fast")) is not None:
            kv.add_rope_scaling_yarn_beta_fast(fast)
        if (slow := rope.get("beta_slow")) is not None:
            kv.add_rope_scaling_yarn_beta_slow(slow)
    elif rope_type in ("su", "longrope"):
        kv.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
    if (theta := rope.get("rope_theta")) is not None:
        kv.add_rope_freq_base(theta)
    if (local_theta := rope_all.get("sliding_attention", {}).get("rope_theta")) is not None:
        kv.add_rope_freq_base_swa(local_theta)
    if (rms_eps := ckpt.find("rms_norm_eps", "norm_eps")) is not None:
        kv.add_layer_norm_rms_eps(rms_eps)
    if (norm_eps := ckpt.find("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon")) is not None:
        kv.add_layer_norm_eps(norm_eps)
    if (n_experts := ckpt.find("num_local_experts", "num_experts", "n_routed_experts")) is not None:
        kv.add_expert_count(n_experts)
    if (n_experts_used := ckpt.find("num_experts_per_tok", "num_experts_per_token", "top_k_experts")) is not None:
        kv.add_expert_used_count(n_experts_used)
    if (n_groups := h.get("n_group")) is not None:
        kv.add_expert_group_count(n_groups)
    if (n_groups_used := h.get("topk_group")) is not None:
        kv.add_expert_group_used_count(n_groups_used)
    if (score := ckpt.find("score_function", "scoring_func", "score_func", "moe_router_activation",
                           "moe_router_activation_func", "expert_selection_fn")) is not None:
        gating = {"sigmoid": gguf.ExpertGatingFuncType.SIGMOID, "softmax": gguf.ExpertGatingFuncType.SOFTMAX,
                  "sqrtsoftplus": getattr(gguf.ExpertGatingFuncType, "SQRTSOFTPLUS", None)}.get(score)
        if gating is None:
            raise LLMCoreError(f"{ckpt.directory / 'config.json'}: expert gating function {score!r} is not supported")
        kv.add_expert_gating_func(gating)
    if (head_dim := h.get("head_dim")) is not None:
        kv.add_key_length(head_dim)
        kv.add_value_length(head_dim)
    kv.add_file_type(ftype)


def _no_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    return data


def _keep_name(name: str, ckpt: Checkpoint) -> str | None:
    return name


def _whole(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, shape)]


def _no_extra_tensors(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> list[tuple[str, np.ndarray]]:
    return []


def _gpt2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    add_gpt2_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))


def _sentencepiece_or_gpt2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Qwen2Model.set_vocab: tokenizer.model if the checkpoint has one, else tokenizer.json."""
    if (ckpt.directory / "tokenizer.model").is_file():
        add_sentencepiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))
    else:
        _gpt2_vocab(kv, ckpt)


@dataclass(frozen=True)
class ExpertMerge:
    """How a model class stacks per-expert matrices into one 3-D tensor per layer and kind, written
    where the layer's last expert tensor is read."""

    #: matches a per-expert tensor's HF name; groups: layer, expert, kind
    pattern: str
    #: the kinds in the order the merged tensors are written
    kinds: tuple[str, ...]
    #: the merged tensor's HF name, from ``bid`` and ``kind``
    merged_name: str
    #: the config keys giving the number of experts
    count_keys: tuple[str, ...]


@dataclass(frozen=True)
class Architecture:
    arch: gguf.MODEL_ARCH
    #: config.json keys transformers' config class fills in when they are missing (convert reads the
    #: config through AutoConfig): name -> value computed from the config
    config_defaults: Callable[[dict[str, Any]], dict[str, Any]]
    parameters: Callable[[gguf.GGUFWriter, Checkpoint, gguf.LlamaFileType], None] = text_parameters
    vocab: Callable[[gguf.GGUFWriter, Checkpoint], None] = _gpt2_vocab
    rewrite: TensorRewrite = _no_rewrite
    #: (HF name, shape, checkpoint) -> the shape ``rewrite`` gives that tensor
    shape: Callable[[str, tuple[int, ...], Checkpoint], tuple[int, ...]] = lambda name, shape, ckpt: shape
    #: generate_extra_tensors: (GGUF name, float32 data) written before the checkpoint's tensors; keys
    #: it adds come right after the architecture's name
    extra_tensors: Callable[[gguf.GGUFWriter, Checkpoint], list[tuple[str, np.ndarray]]] = _no_extra_tensors
    #: HF tensor names the model class filters out
    skipped: tuple[str, ...] = field(default=())
    #: filter_tensors: the name the model class reads a checkpoint tensor by (what ``rewrite``,
    #: ``shape`` and the name map see), or None for a tensor it drops
    rename: Callable[[str, Checkpoint], str | None] = _keep_name
    #: (HF name, shape, checkpoint) -> the tensors the model class writes of it, as (HF name, shape):
    #: ``rewrite`` is given the whole tensor under each of these names
    split: Callable[[str, tuple[int, ...], Checkpoint], list[tuple[str, tuple[int, ...]]]] = _whole
    experts: ExpertMerge | None = None


# --- Llama, Mistral ---------------------------------------------------------------------------

def _permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """LlamaModel.permute: HF's rotary halves back to llama.cpp's interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _llama_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    n_head = ckpt.find("n_heads", "num_attention_heads")
    n_kv_head = ckpt.find("n_kv_heads", "num_key_value_heads")
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        return _permute(data, n_head, n_head)
    if name.endswith(("k_proj.weight", "k_proj.bias")):
        return _permute(data, n_head, n_kv_head)
    return data


def _llama_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    text_parameters(kv, ckpt, ftype)
    h = ckpt.hparams
    kv.add_vocab_size(h["vocab_size"])
    kv.add_rope_dimension_count(h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"])


def _llama_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """LlamaModel.set_vocab: tokenizer_config.json's add_prefix_space, tokenizer.model else
    tokenizer.json, and no BOS added for 49152-token vocabularies (meant for granite's small
    models; SmolLM2's has that size too)."""
    if (prefix := tokenizer_config(ckpt.directory).get("add_prefix_space")) is not None:
        kv.add_add_space_prefix(prefix)
    if not (ckpt.directory / "tokenizer.model").is_file() and _is_llama_hf_tokenizer(ckpt.directory):
        raise LLMCoreError(f"{ckpt.directory / 'tokenizer.json'}: a SentencePiece-style BPE tokenizer without its "
                           "tokenizer.model (convert_hf_to_gguf.py's LlamaHfVocab) is not supported yet")
    _sentencepiece_or_gpt2_vocab(kv, ckpt)
    if ckpt.hparams.get("vocab_size", 32000) == 49152:
        kv.add_add_bos_token(False)


def _is_llama_hf_tokenizer(directory: Path) -> bool:
    """gguf-py's LlamaHfVocab accepts it: a byte-fallback BPE model with a Sequence decoder."""
    try:
        tokenizer = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    model = tokenizer.get("model") or {}
    return (model.get("type") == "BPE" and model.get("byte_fallback", False)
            and (tokenizer.get("decoder") or {}).get("type") == "Sequence")


def _llama3_rope_factors(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> list[tuple[str, np.ndarray]]:
    """LlamaModel.generate_extra_tensors: rope_scaling llama3's per-frequency factors (float32
    arithmetic, as torch's)."""
    rope = ckpt.rope.get("full_attention", ckpt.rope)
    if not rope or rope.get("rope_type", "").lower() != "llama3":
        return []
    h = ckpt.hparams
    dim = h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"]
    base = rope.get("rope_theta", 10000.0)
    freqs = (1.0 / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))).astype(np.float32)
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    factors = []
    for freq in freqs:
        wavelen = np.float32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (np.float32(old_context) / wavelen - np.float32(low)) / np.float32(high - low)
            factors.append(np.float32(1) / ((np.float32(1) - smooth) / np.float32(factor) + smooth))
    return [(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", np.array(factors, dtype=np.float32))]


def _llama_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """LlamaConfig's: a head size and rope base of its own."""
    return {"head_dim": config["hidden_size"] // config["num_attention_heads"], "rope_theta": 10000.0}


def _rope_default(config: dict[str, Any]) -> dict[str, Any]:
    """MistralConfig's and Qwen2Config's: only the rope base (their head_dim stays unset)."""
    return {"rope_theta": 10000.0}


def _smollm3_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """SmolLM3Config's."""
    return {"rope_theta": 2_000_000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
            "num_key_value_heads": 4}


def _qwen3_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Qwen3Config's: a fixed head size of 128 whatever the width."""
    return {"head_dim": 128, "rope_theta": 10000.0}


# --- Gemma ------------------------------------------------------------------------------------

def _plus_one_norms(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """Gemma's RMSNorm multiplies by 1 + weight: convert stores the sum (in the tensor's own type)."""
    return data + data.dtype.type(1) if name.endswith("norm.weight") else data


def _add_model_shape(kv: gguf.GGUFWriter, h: dict[str, Any]) -> None:
    """The first keys of the model classes that write their own (Gemma's, StableLM's), in their order."""
    kv.add_context_length(h["max_position_embeddings"])
    kv.add_embedding_length(h["hidden_size"])
    kv.add_block_count(h["num_hidden_layers"])
    kv.add_feed_forward_length(h["intermediate_size"])


def _gemma_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """GemmaModel.set_gguf_parameters (Gemma2Model's adds to it)."""
    h = ckpt.hparams
    _add_model_shape(kv, h)
    kv.add_head_count(h["num_attention_heads"])
    kv.add_head_count_kv(h.get("num_key_value_heads", h["num_attention_heads"]))
    kv.add_layer_norm_rms_eps(h["rms_norm_eps"])
    kv.add_key_length(h["head_dim"])
    kv.add_value_length(h["head_dim"])
    kv.add_file_type(ftype)


def _gemma2_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    _gemma_parameters(kv, ckpt, ftype)
    kv.add_attn_logit_softcapping(ckpt.hparams["attn_logit_softcapping"])
    kv.add_final_logit_softcapping(ckpt.hparams["final_logit_softcapping"])
    kv.add_sliding_window(ckpt.hparams["sliding_window"])


def _gemma3_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    text_parameters(kv, ckpt, ftype)
    h = ckpt.hparams
    kv.add_context_length(h.get("max_position_embeddings", 131072))
    kv.add_head_count(h.get("num_attention_heads", 8))
    kv.add_layer_norm_rms_eps(h.get("rms_norm_eps", 1e-6))
    kv.add_key_length(h.get("head_dim", 256))
    kv.add_value_length(h.get("head_dim", 256))
    kv.add_rope_freq_base(ckpt.rope.get("full_attention", ckpt.rope).get("rope_theta", 1_000_000.0))
    if final_softcap := h.get("final_logit_softcapping"):
        kv.add_final_logit_softcapping(final_softcap)
    if h.get("sliding_window_pattern") != 1:
        kv.add_sliding_window(h["sliding_window"])
    kv.add_head_count_kv(h.get("num_key_value_heads", 4))


def _gemma_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """GemmaModel.set_vocab: SentencePiece, CodeGemma's infill and end-of-turn ids, no space prefix."""
    add_sentencepiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))
    special = SpecialVocab(ckpt.directory, load_merges=False,
                           special_token_types=["prefix", "suffix", "middle", "fsep", "eot"])
    for typ, token in (("prefix", 67), ("suffix", 69), ("middle", 68), ("fsep", 70), ("eot", 107)):
        special._set_special_token(typ, token)
    special.chat_template = None  # added once already
    special.add_to_gguf(kv, quiet=True)
    kv.add_add_space_prefix(False)


def _sentencepiece_without_space_prefix(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Gemma2Model.set_vocab (and Gemma3Model's with a tokenizer.model)."""
    add_sentencepiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))
    kv.add_add_space_prefix(False)


def _gemma3_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    if (ckpt.directory / "tokenizer.model").is_file():
        _sentencepiece_without_space_prefix(kv, ckpt)
    else:
        _gpt2_vocab(kv, ckpt)


def _gemma3_vocab_rows(ckpt: Checkpoint) -> int:
    """Gemma3Model.modify_tensors' real vocabulary size, the rows of token_embd it keeps."""
    if (ckpt.directory / "tokenizer.model").is_file():
        return len(sentencepiece_vocab(ckpt.directory, ckpt.find("vocab_size_per_layer_input", "vocab_size"))[0])
    tokenizer = json.loads((ckpt.directory / "tokenizer.json").read_text(encoding="utf-8"))
    return len(tokenizer["model"]["vocab"]) + len(tokenizer["added_tokens"])


def _gemma3_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    if "embed_tokens.weight" in name:
        return (min(shape[0], _gemma3_vocab_rows(ckpt)), *shape[1:])
    return shape


def _gemma3_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if "embed_tokens.weight" in name:
        data = data[:_gemma3_vocab_rows(ckpt)]
    return _plus_one_norms(name, data, ckpt)


def _gemma_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """GemmaConfig's (Gemma2Config adds its soft-caps and window)."""
    return {"head_dim": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 8192,
            "num_key_value_heads": config.get("num_attention_heads", 16)}


def _gemma2_defaults(config: dict[str, Any]) -> dict[str, Any]:
    return {**_gemma_defaults(config), "sliding_window": 4096, "final_logit_softcapping": 30.0,
            "attn_logit_softcapping": 50.0}


def _gemma3_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Gemma3TextConfig's."""
    return {"head_dim": 256, "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 131072, "sliding_window": 4096, "final_logit_softcapping": None,
            "attn_logit_softcapping": None, "rope_scaling": None,
            "num_key_value_heads": config.get("num_attention_heads", 8)}


# --- mixtures of experts -----------------------------------------------------------------------

def _qwen2moe_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """Qwen2MoeModel.set_gguf_parameters (Qwen3MoeModel's too)."""
    text_parameters(kv, ckpt, ftype)
    if (n_ff_exp := ckpt.hparams.get("moe_intermediate_size")) is not None:
        kv.add_expert_feed_forward_length(n_ff_exp)
    if (n_ff_shexp := ckpt.hparams.get("shared_expert_intermediate_size")) is not None:
        kv.add_expert_shared_feed_forward_length(n_ff_shexp)


def _qwen2moe_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Qwen2MoeConfig's."""
    return {"rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768, "num_experts": 60,
            "num_experts_per_tok": 4, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
            "num_key_value_heads": 16, "intermediate_size": 5632}


def _qwen3moe_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Qwen3MoeConfig's."""
    return {"rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768, "num_experts": 128,
            "num_experts_per_tok": 8, "moe_intermediate_size": 768, "num_key_value_heads": 4,
            "intermediate_size": 6144}


def _mixtral_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """MixtralConfig's."""
    return {"rope_theta": 1_000_000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 131072,
            "num_local_experts": 8, "num_experts_per_tok": 2, "num_key_value_heads": 8, "intermediate_size": 14336}


_QWEN_EXPERTS = ExpertMerge(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(\w+)\.weight",
                            ("down_proj", "gate_proj", "up_proj"), "model.layers.{bid}.mlp.experts.{kind}.weight",
                            ("num_local_experts", "num_experts"))
_MIXTRAL_EXPERTS = ExpertMerge(r"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.(\w+)\.weight",
                               ("w1", "w2", "w3"), "layers.{bid}.feed_forward.experts.{kind}.weight",
                               ("num_local_experts",))


# --- Phi-3, StableLM, StarCoder2, OLMo 2 ---------------------------------------------------------

def _phi3_rope_dims(ckpt: Checkpoint) -> int:
    n_embd, n_head = ckpt.find("hidden_size", "n_embd"), ckpt.find("num_attention_heads", "n_head")
    return int(ckpt.rope.get("partial_rotary_factor", 1.0) * n_embd) // n_head


def _phi3_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """Phi3MiniModel.set_gguf_parameters (the fused QKV and gate-up matrices are written as they are)."""
    kv.add_context_length(ckpt.find("n_positions", "max_position_embeddings"))
    kv.add_rope_scaling_orig_ctx_len(ckpt.rope["original_max_position_embeddings"])
    kv.add_embedding_length(ckpt.find("hidden_size", "n_embd"))
    kv.add_feed_forward_length(ckpt.hparams["intermediate_size"])
    kv.add_block_count(ckpt.hparams["num_hidden_layers"])
    kv.add_head_count(ckpt.find("num_attention_heads", "n_head"))
    kv.add_head_count_kv(ckpt.find("num_key_value_heads", "n_head_kv"))
    kv.add_layer_norm_rms_eps(ckpt.hparams["rms_norm_eps"])
    kv.add_rope_dimension_count(_phi3_rope_dims(ckpt))
    kv.add_rope_freq_base(ckpt.rope.get("full_attention", ckpt.rope)["rope_theta"])
    kv.add_file_type(ftype)
    kv.add_sliding_window(ckpt.hparams.get("sliding_window") or 0)  # 0 tells Phi-4 from the others


def _phi3_rope_factors(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> list[tuple[str, np.ndarray]]:
    """Phi3MiniModel.generate_extra_tensors: LongRoPE's long and short factors, and the attention
    factor their context extension implies."""
    rope = ckpt.rope
    long_factors, short_factors = rope.get("long_factor"), rope.get("short_factor")
    if not long_factors:
        return []
    original = rope["original_max_position_embeddings"]
    scale = ckpt.find("n_positions", "max_position_embeddings") / original
    kind = rope.get("rope_type", "").lower()
    if kind in ("su", "longrope"):
        attn_factor = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0
    elif kind == "yarn":
        attn_factor = 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0
    else:
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: rope_scaling type {kind!r} is not supported")
    kv.add_rope_scaling_attn_factors(attn_factor)
    n_pairs = _phi3_rope_dims(ckpt) / 2
    if short_factors is None or len(long_factors) != len(short_factors) or len(long_factors) != n_pairs:
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: rope_scaling long_factor and short_factor must each "
                           f"have {n_pairs:g} values")
    return [(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight", np.array(long_factors, np.float32)),
            (gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight", np.array(short_factors, np.float32))]


def _phi3_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Phi3MiniModel.set_vocab: Phi-4's GPT2Tokenizer, else Phi-3's SentencePiece model."""
    if tokenizer_config(ckpt.directory).get("tokenizer_class") == "GPT2Tokenizer":
        _gpt2_vocab(kv, ckpt)
    elif not (ckpt.directory / "tokenizer.model").is_file():
        raise LLMCoreError(f"{ckpt.directory}: no tokenizer.model (Phi-3 reads its SentencePiece model)")
    else:
        add_sentencepiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"), phi3_sentencepiece_vocab)


def _stablelm_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """StableLMModel.set_gguf_parameters."""
    h = ckpt.hparams
    _add_model_shape(kv, h)
    rotary = ckpt.rope["partial_rotary_factor"]
    kv.add_rope_dimension_count(int(rotary * (h["hidden_size"] // h["num_attention_heads"])))
    kv.add_head_count(h["num_attention_heads"])
    kv.add_head_count_kv(h["num_key_value_heads"])
    kv.add_parallel_residual(h.get("use_parallel_residual", True))
    kv.add_layer_norm_eps(ckpt.find("layer_norm_eps", "norm_eps"))
    kv.add_file_type(ftype)


def _stablelm_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    if not (ckpt.directory / "tokenizer.json").is_file():
        raise LLMCoreError(f"{ckpt.directory}: StableLM's Qwen-style vocabulary files are not supported; "
                           "a tokenizer.json is")
    _gpt2_vocab(kv, ckpt)


def _stablelm_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if "layernorm.norms." in name:
        raise LLMCoreError(f"{ckpt.directory}: StableLM's per-head q/k LayerNorms ({name}) are not supported yet")
    return data


def _olmo2_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """Olmo2Model.set_gguf_parameters: OLMo 3's windows, where the config has one."""
    text_parameters(kv, ckpt, ftype)
    h = ckpt.hparams
    if "sliding_window" in h:
        kv.add_sliding_window(h["sliding_window"])
        if "layer_types" in h:
            pattern = [t == "sliding_attention" for t in h["layer_types"]]
        else:
            pattern = [(i + 1) % 4 != 0 for i in range(h["num_hidden_layers"])]
        kv.add_sliding_window_pattern(pattern)


def _phi3_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Phi3Config's."""
    return {"rope_theta": 10000.0, "original_max_position_embeddings": 4096, "partial_rotary_factor": 1.0,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 4096, "sliding_window": None,
            "num_key_value_heads": config.get("num_attention_heads", 32)}


def _stablelm_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """StableLmConfig's."""
    return {"rope_theta": 10000, "partial_rotary_factor": 0.25, "layer_norm_eps": 1e-5, "use_parallel_residual": False,
            "max_position_embeddings": 4096, "num_key_value_heads": 32}


def _starcoder2_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Starcoder2Config's."""
    return {"rope_theta": 10000.0, "norm_epsilon": 1e-5, "max_position_embeddings": 4096, "num_key_value_heads": 2}


def _olmo2_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Olmo2Config's."""
    return {"rope_theta": 10000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 2048,
            "num_key_value_heads": config.get("num_attention_heads", 32)}


# --- BERT ---------------------------------------------------------------------------------------

def _bert_rename(name: str, ckpt: Checkpoint) -> str | None:
    """BertModel.filter_tensors: no ``bert.`` prefix, LayerNorm gamma/beta as weight/bias, and
    neither the pooler nor the pre-training heads."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[:-len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[:-len(".beta")] + ".bias"
    if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias") \
            or name.startswith(("cls.predictions", "cls.seq_relationship")):
        return None
    return name


_POOLING = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS, "lasttoken": gguf.PoolingType.LAST}


def _add_pooling_type(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """_try_set_pooling_type: sentence-transformers' Pooling module (modules.json names its
    directory), and a classification head's own pooling."""
    modules_path = ckpt.directory / "modules.json"
    modules = read_json(modules_path) if modules_path.is_file() else []
    pooling_dir = next((m["path"] for m in modules if m["type"].endswith("Pooling")), None)
    if pooling_dir is not None:
        pooling_path = ckpt.directory / pooling_dir / "config.json"
        pooling = read_json(pooling_path)
        if pooling.get("pooling_mode_mean_tokens"):
            kv.add_pooling_type(gguf.PoolingType.MEAN)
        elif pooling.get("pooling_mode_cls_token"):
            kv.add_pooling_type(gguf.PoolingType.CLS)
        elif pooling.get("pooling_mode_lasttoken"):
            kv.add_pooling_type(gguf.PoolingType.LAST)
        elif pooling.get("pooling_mode") in _POOLING:
            kv.add_pooling_type(_POOLING[pooling["pooling_mode"]])
        else:
            raise LLMCoreError(f"{pooling_path}: only mean, cls and last-token pooling are supported")
    if (classifier := ckpt.hparams.get("classifier_pooling")) is not None:
        if classifier not in ("cls", "mean"):
            raise LLMCoreError(f"{ckpt.directory / 'config.json'}: classifier_pooling {classifier!r} is not supported")
        kv.add_classifier_pooling_type(_POOLING[classifier])


def _bert_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """BertModel.set_gguf_parameters: an encoder (non-causal) with its pooling."""
    labels = ckpt.hparams.get("id2label")
    if labels and not (len(labels) == 2 and labels.get(0, labels.get("0")) == "LABEL_0"):
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: BERT classification heads (id2label) "
                           "are not supported yet")
    text_parameters(kv, ckpt, ftype)
    kv.add_causal_attention(False)
    _add_pooling_type(kv, ckpt)


def _bert_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    add_wordpiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"), ckpt.hparams.get("type_vocab_size", 1))


def _bert_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """BertConfig's."""
    return {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12}


# --- GPT-2, GPT-NeoX, BLOOM, Falcon, MPT -----------------------------------------------------------

_GPT2_CONV1D = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def _gpt2_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """GPT2Model.set_gguf_parameters."""
    h = ckpt.hparams
    kv.add_block_count(ckpt.block_count)
    kv.add_context_length(h["n_ctx"])
    kv.add_embedding_length(h["n_embd"])
    kv.add_feed_forward_length(4 * h["n_embd"])
    kv.add_head_count(h["n_head"])
    kv.add_layer_norm_eps(h["layer_norm_epsilon"])
    kv.add_file_type(ftype)


def _gpt2_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    return shape[::-1] if name.endswith(_GPT2_CONV1D) else shape


def _gpt2_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """GPT-2's Conv1D matrices are stored input-major: transposed to (out, in)."""
    return data.T if name.endswith(_GPT2_CONV1D) else data


def _gpt2_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """GPT2Config's (n_ctx is no attribute of it: convert reads it from config.json)."""
    return {"n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "layer_norm_epsilon": 1e-5}


def _qkv_per_head_to_fused(data: np.ndarray, n_head: int) -> np.ndarray:
    """BLOOM's and GPT-NeoX's fused QKV rows, grouped per head (q, k, v of head 0, then of head 1,
    ...), to all q rows, all k rows, all v rows."""
    return data.reshape(n_head, 3, -1, *data.shape[1:]).swapaxes(0, 1).reshape(data.shape)


def _neox_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """GPTNeoXModel.set_gguf_parameters (it writes no file type)."""
    h = ckpt.hparams
    kv.add_context_length(h["max_position_embeddings"])
    kv.add_embedding_length(h["hidden_size"])
    kv.add_block_count(ckpt.block_count)
    kv.add_feed_forward_length(h["intermediate_size"])
    kv.add_rope_dimension_count(int(h["rotary_pct"] * (h["hidden_size"] // h["num_attention_heads"])))
    kv.add_head_count(h["num_attention_heads"])
    kv.add_parallel_residual(h.get("use_parallel_residual", True))
    kv.add_layer_norm_eps(h["layer_norm_eps"])


def _neox_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if name.endswith(("attention.query_key_value.weight", "attention.query_key_value.bias")):
        return _qkv_per_head_to_fused(data, ckpt.find("n_head", "num_attention_heads"))
    return data


def _neox_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """GPTNeoXConfig's."""
    return {"hidden_size": 6144, "num_attention_heads": 64, "intermediate_size": 24576, "rotary_pct": 0.25,
            "max_position_embeddings": 2048, "layer_norm_eps": 1e-5, "use_parallel_residual": True}


def _bloom_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """BloomModel.set_gguf_parameters: no context length in the config (the width stands in)."""
    h = ckpt.hparams
    n_embd, n_head = ckpt.find("hidden_size", "n_embed"), ckpt.find("n_head", "num_attention_heads")
    kv.add_context_length(h.get("seq_length", n_embd))
    kv.add_embedding_length(n_embd)
    kv.add_feed_forward_length(4 * n_embd)
    kv.add_block_count(ckpt.block_count)
    kv.add_head_count(n_head)
    kv.add_head_count_kv(n_head)
    kv.add_layer_norm_eps(h["layer_norm_epsilon"])
    kv.add_file_type(ftype)


def _bloom_rename(name: str, ckpt: Checkpoint) -> str | None:
    """BloomModel.modify_tensors drops every ``transformer.``."""
    return name.replace("transformer.", "")


def _bloom_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if name.endswith(("self_attention.query_key_value.weight", "self_attention.query_key_value.bias")):
        return _qkv_per_head_to_fused(data, ckpt.find("n_head", "num_attention_heads"))
    return data


def _bloom_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """BloomConfig's."""
    return {"vocab_size": 250880, "hidden_size": 64, "n_layer": 2, "n_head": 8, "layer_norm_epsilon": 1e-5}


def _falcon_kv_heads(ckpt: Checkpoint) -> int:
    return ckpt.find("num_kv_heads", "n_head_kv") or 1


def _falcon_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """FalconModel.set_gguf_parameters: a fixed context of 2048, jploski's QKV layout."""
    h = ckpt.hparams
    kv.add_context_length(2048)
    kv.add_tensor_data_layout("jploski")
    kv.add_embedding_length(h["hidden_size"])
    kv.add_feed_forward_length(4 * h["hidden_size"])
    kv.add_block_count(ckpt.block_count)
    kv.add_head_count(ckpt.find("num_attention_heads", "n_head"))
    kv.add_head_count_kv(_falcon_kv_heads(ckpt))
    kv.add_layer_norm_eps(h["layer_norm_epsilon"])
    kv.add_file_type(ftype)


def _falcon_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """FalconModel.modify_tensors: each KV group's query heads, key and value regrouped as all
    query heads, then all keys, then all values."""
    if "query_key_value" not in name:
        return data
    n_head, n_head_kv = ckpt.find("num_attention_heads", "n_head"), _falcon_kv_heads(ckpt)
    head_dim = ckpt.hparams["hidden_size"] // n_head
    expected = (n_head + 2 * n_head_kv) * head_dim
    if data.shape[0] != expected:
        raise LLMCoreError(f"{ckpt.directory}: {name} has {data.shape[0]} rows, not the {expected} of "
                           f"{n_head} query and {n_head_kv} key-value heads")
    qkv = data.reshape(n_head_kv, n_head // n_head_kv + 2, head_dim, -1)
    return np.concatenate([qkv[:, :-2].reshape(n_head * head_dim, -1), qkv[:, -2].reshape(n_head_kv * head_dim, -1),
                           qkv[:, -1].reshape(n_head_kv * head_dim, -1)]).reshape(data.shape)


def _falcon_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """FalconConfig's: as many KV heads as query heads unless the config says."""
    return {"hidden_size": 4544, "num_attention_heads": 71, "layer_norm_epsilon": 1e-5,
            "num_kv_heads": config.get("num_kv_heads") or config.get("num_attention_heads", 71)}


def _mpt_attention(ckpt: Checkpoint) -> dict[str, Any]:
    """attn_config as MptAttentionConfig reads it: its own keys over its defaults (others, such as
    kv_n_heads, dropped)."""
    attn = ckpt.hparams.get("attn_config") or {}
    return {"clip_qkv": attn.get("clip_qkv"), "alibi": attn.get("alibi", True),
            "alibi_bias_max": attn.get("alibi_bias_max", 8)}


def _mpt_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """MPTModel.set_gguf_parameters (it writes no file type)."""
    h = ckpt.hparams
    attn = _mpt_attention(ckpt)
    kv.add_context_length(h["max_seq_len"])
    kv.add_embedding_length(h["d_model"])
    kv.add_block_count(ckpt.block_count)
    kv.add_feed_forward_length(4 * h["d_model"])
    kv.add_head_count(h["n_heads"])
    kv.add_layer_norm_eps(1e-5)
    if attn["clip_qkv"] is not None:
        kv.add_clamp_kqv(attn["clip_qkv"])
    kv.add_max_alibi_bias(attn["alibi_bias_max"] if attn["alibi"] else 0.0)


def _mpt_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """MptConfig's."""
    return {"d_model": 2048, "n_heads": 16, "n_layers": 24, "max_seq_len": 2048, "vocab_size": 50368}


# --- Command-R, OLMo, OLMoE, GLM-4 ---------------------------------------------------------------

def _command_r_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """CommandR2Model.set_gguf_parameters: the context is model_max_length where the config has it."""
    h = {**ckpt.hparams, "max_position_embeddings": ckpt.find("model_max_length", "max_position_embeddings")}
    text_parameters(kv, Checkpoint(ckpt.directory, h), ftype)
    kv.add_logit_scale(h["logit_scale"])
    kv.add_rope_scaling_type(gguf.RopeScalingType.NONE)


def _command_r_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """CohereConfig's."""
    return {"hidden_size": 8192, "intermediate_size": 22528, "logit_scale": 0.0625, "num_attention_heads": 64,
            "num_key_value_heads": config.get("num_attention_heads", 64), "max_position_embeddings": 8192,
            "layer_norm_eps": 1e-5, "rope_theta": 10000.0}


def _olmo_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """OlmoModel.set_gguf_parameters: parameter-free LayerNorms of epsilon 1e-5, a QKV clamp."""
    text_parameters(kv, ckpt, ftype)
    kv.add_layer_norm_eps(1e-5)
    if (clip := ckpt.hparams.get("clip_qkv")) is not None:
        kv.add_clamp_kqv(clip)


def _olmo_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """OlmoModel.modify_tensors: Llama's q/k permutation, of the weights only."""
    return _llama_rewrite(name, data, ckpt) if name.endswith(".weight") else data


def _olmo_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """OlmoConfig's."""
    return {"max_position_embeddings": 2048, "rope_theta": 10000.0, "clip_qkv": None,
            "num_key_value_heads": config.get("num_attention_heads", 32)}


def _olmoe_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """OlmoeModel.set_gguf_parameters: RMS norms of epsilon 1e-5 whatever the config says."""
    text_parameters(kv, ckpt, ftype)
    kv.add_layer_norm_rms_eps(1e-5)


def _olmoe_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """OlmoeConfig's."""
    return {"max_position_embeddings": 4096, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "num_experts": 64,
            "num_experts_per_tok": 8, "num_key_value_heads": config.get("num_attention_heads", 16)}


def _glm4_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """Glm4Model.set_gguf_parameters: half of each head rotated unless the rope parameters say."""
    text_parameters(kv, ckpt, ftype)
    h = ckpt.hparams
    head_dim = h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"]
    kv.add_rope_dimension_count(int(head_dim * ckpt.rope.get("partial_rotary_factor", 0.5)))


def _glm4_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Glm4Model.set_vocab: the BPE vocabulary, with <|endoftext|> as EOS, unknown token and BOS and
    <|user|> ending a turn, where the tokenizer files name none."""
    path = ckpt.directory / "tokenizer.json"
    added = {token["content"]: token["id"] for token in read_json(path).get("added_tokens", [])}
    for token in ("<|endoftext|>", "<|user|>"):
        if token not in added:
            raise LLMCoreError(f"{path}: GLM-4's added token {token} is missing")
    add_gpt2_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"),
                   {"eos": added["<|endoftext|>"], "eot": added["<|user|>"], "unk": added["<|endoftext|>"],
                    "bos": added["<|endoftext|>"]})


def _glm4_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Glm4Config's."""
    return {"head_dim": 128, "num_key_value_heads": 2, "max_position_embeddings": 131072, "rms_norm_eps": 1.5625e-07,
            "rope_theta": 10000.0, "partial_rotary_factor": 0.5}


# --- DeepSeek V2 -----------------------------------------------------------------------------------

def _deepseek2_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """DeepseekV2Model.set_gguf_parameters: multi-head latent attention written as one KV head of
    the latent's width, leading dense layers, shared experts."""
    h = {**ckpt.hparams, "num_key_value_heads": 1, "rms_norm_eps": ckpt.hparams.get("rms_norm_eps", 1e-6)}
    text_parameters(kv, Checkpoint(ckpt.directory, h), ftype)
    dense = h.get("first_k_dense_replace")
    if dense is None:
        dense = ckpt.block_count if h.get("n_routed_experts") is None else 0
    kv.add_leading_dense_block_count(dense)
    kv_lora_rank = h.get("kv_lora_rank", 512)
    kv.add_vocab_size(h["vocab_size"])
    if h.get("q_lora_rank") is not None:
        kv.add_q_lora_rank(h["q_lora_rank"])
    kv.add_kv_lora_rank(kv_lora_rank)
    kv.add_key_length(kv_lora_rank + h["qk_rope_head_dim"])
    kv.add_value_length(kv_lora_rank)
    kv.add_key_length_mla(h["qk_nope_head_dim"] + h["qk_rope_head_dim"])
    kv.add_value_length_mla(h["v_head_dim"])
    kv.add_expert_feed_forward_length(ckpt.find("moe_intermediate_size", "intermediate_size"))
    if (n_experts := h.get("n_routed_experts")) is not None:
        kv.add_expert_count(n_experts)
    kv.add_expert_shared_count(h.get("n_shared_experts", 0))
    if (scale := h.get("routed_scaling_factor")) is not None:
        kv.add_expert_weights_scale(scale)
    if h.get("norm_topk_prob"):
        kv.add_expert_weights_norm(h["norm_topk_prob"])
    kv.add_rope_dimension_count(h["qk_rope_head_dim"])
    if (mscale_all := ckpt.rope.get("mscale_all_dim")) is not None:
        kv.add_rope_scaling_yarn_log_mul(0.1 * mscale_all)


def _deepseek2_rename(name: str, ckpt: Checkpoint) -> str | None:
    """DeepseekV2Model.modify_tensors drops a tied output and the multi-token-prediction layers."""
    if ckpt.hparams.get("tie_word_embeddings", False) and name in ("lm_head.weight", "model.lm_head.weight"):
        return None
    if (match := re.match(r"model.layers.(\d+)", name)) and int(match[1]) >= ckpt.hparams["num_hidden_layers"]:
        return None
    return name


def _deepseek2_kv_b_heads(ckpt: Checkpoint) -> tuple[int, int, int]:
    h = ckpt.hparams
    return h["num_key_value_heads"], h["qk_nope_head_dim"], h["v_head_dim"]


def _deepseek2_split(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> list[tuple[str, tuple[int, ...]]]:
    """kv_b_proj as k_b_proj (each head's key part, transposed) and v_b_proj (its value part), as
    MLA's absorption needs them."""
    if not name.endswith("kv_b_proj.weight"):
        return [(name, shape)]
    n_head_kv, nope, v_dim = _deepseek2_kv_b_heads(ckpt)
    if shape[0] != n_head_kv * (nope + v_dim):
        raise LLMCoreError(f"{ckpt.directory}: {name} has {shape[0]} rows, not {n_head_kv} heads of {nope} + {v_dim}")
    return [(name.replace("kv_b_proj", "k_b_proj"), (n_head_kv, shape[1], nope)),
            (name.replace("kv_b_proj", "v_b_proj"), (n_head_kv, v_dim, shape[1]))]


def _deepseek2_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if not name.endswith(("k_b_proj.weight", "v_b_proj.weight")):
        return data
    n_head_kv, nope, v_dim = _deepseek2_kv_b_heads(ckpt)
    kv_b = data.reshape(n_head_kv, nope + v_dim, data.shape[-1])
    return kv_b[:, :nope].swapaxes(1, 2) if name.endswith("k_b_proj.weight") else kv_b[:, nope:]


def _deepseek2_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """DeepseekV2Config's (its head_dim is the rotary part of a head)."""
    return {"max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None,
            "first_k_dense_replace": 0, "kv_lora_rank": 512, "q_lora_rank": 1536, "n_group": None,
            "n_routed_experts": 64, "n_shared_experts": 2, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
            "routed_scaling_factor": 1.0, "topk_group": None, "v_head_dim": 128, "num_experts_per_tok": None,
            "norm_topk_prob": False, "moe_intermediate_size": 1407,
            "head_dim": config.get("qk_rope_head_dim", 64),
            "num_key_value_heads": config.get("num_key_value_heads") or config.get("num_attention_heads", 32)}


_DEEPSEEK2_EXPERTS = dataclasses.replace(_QWEN_EXPERTS, count_keys=("n_routed_experts",))


# --- InternLM2 -----------------------------------------------------------------------------------

_INTERNLM2_WQKV = re.compile(r"model\.layers\.(\d+)\.attention\.wqkv\.weight")


def _internlm2_heads(ckpt: Checkpoint) -> tuple[int, int, int]:
    h = ckpt.hparams
    return h["num_attention_heads"], h["num_key_value_heads"], h["hidden_size"] // h["num_attention_heads"]


def _internlm2_split(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> list[tuple[str, tuple[int, ...]]]:
    """InternLM2Model.modify_tensors: the fused wqkv (per KV group: its query heads, a key, a value)
    written as attn_q, attn_k and attn_v."""
    if (match := _INTERNLM2_WQKV.fullmatch(name)) is None:
        return [(name, shape)]
    n_head, n_head_kv, head_dim = _internlm2_heads(ckpt)
    if shape[0] != (rows := (n_head + 2 * n_head_kv) * head_dim):
        raise LLMCoreError(f"{ckpt.directory}: {name} has {shape[0]} rows, not the {rows} of {n_head} query and "
                           f"{n_head_kv} key-value heads")
    return [(f"blk.{match[1]}.{part}.weight", (heads * head_dim, shape[1]))
            for part, heads in (("attn_q", n_head), ("attn_k", n_head_kv), ("attn_v", n_head_kv))]


def _internlm2_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if not name.endswith((".attn_q.weight", ".attn_k.weight", ".attn_v.weight")):
        return data
    n_head, n_head_kv, head_dim = _internlm2_heads(ckpt)
    qkv = data.reshape(n_head_kv, n_head // n_head_kv + 2, head_dim, data.shape[-1])
    if name.endswith(".attn_q.weight"):
        return _permute(qkv[:, :-2].reshape(-1, data.shape[-1]), n_head, n_head)
    if name.endswith(".attn_k.weight"):
        return _permute(qkv[:, -2].reshape(-1, data.shape[-1]), n_head, n_head_kv)
    return qkv[:, -1].reshape(-1, data.shape[-1])


def _internlm2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    if not (ckpt.directory / "tokenizer.model").is_file():
        raise LLMCoreError(f"{ckpt.directory}: no tokenizer.model (InternLM2 reads its SentencePiece model)")
    add_internlm2_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))


def _no_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Remote-code models: convert reads config.json as it is (transformers has no config class)."""
    return {}


_LLAMA = Architecture(gguf.MODEL_ARCH.LLAMA, _llama_defaults, _llama_parameters, _llama_vocab, _llama_rewrite,
                      extra_tensors=_llama3_rope_factors)

#: config.json's ``architectures[0]`` -> how to convert it
ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": _LLAMA,
    "MistralForCausalLM": Architecture(gguf.MODEL_ARCH.LLAMA, _rope_default, _llama_parameters, _llama_vocab,
                                       _llama_rewrite, extra_tensors=_llama3_rope_factors),
    "SmolLM3ForCausalLM": Architecture(gguf.MODEL_ARCH.SMOLLM3, _smollm3_defaults, _llama_parameters, _llama_vocab,
                                       _llama_rewrite, extra_tensors=_llama3_rope_factors),
    "Qwen2ForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN2, _rope_default, vocab=_sentencepiece_or_gpt2_vocab),
    "MixtralForCausalLM": Architecture(gguf.MODEL_ARCH.LLAMA, _mixtral_defaults, _llama_parameters, _llama_vocab,
                                       _llama_rewrite, extra_tensors=_llama3_rope_factors, experts=_MIXTRAL_EXPERTS),
    "Qwen2MoeForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN2MOE, _qwen2moe_defaults, _qwen2moe_parameters,
                                        experts=_QWEN_EXPERTS),
    "Qwen3MoeForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN3MOE, _qwen3moe_defaults, _qwen2moe_parameters,
                                        experts=_QWEN_EXPERTS),
    "Qwen3ForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN3, _qwen3_defaults, vocab=_sentencepiece_or_gpt2_vocab),
    "GemmaForCausalLM": Architecture(gguf.MODEL_ARCH.GEMMA, _gemma_defaults, _gemma_parameters, _gemma_vocab,
                                     _plus_one_norms, skipped=("lm_head.weight",)),
    "Gemma2ForCausalLM": Architecture(gguf.MODEL_ARCH.GEMMA2, _gemma2_defaults, _gemma2_parameters,
                                      _sentencepiece_without_space_prefix, _plus_one_norms, skipped=("lm_head.weight",)),
    "Phi3ForCausalLM": Architecture(gguf.MODEL_ARCH.PHI3, _phi3_defaults, _phi3_parameters, _phi3_vocab,
                                    extra_tensors=_phi3_rope_factors),
    "StableLmForCausalLM": Architecture(gguf.MODEL_ARCH.STABLELM, _stablelm_defaults, _stablelm_parameters,
                                        _stablelm_vocab, _stablelm_rewrite),
    "Starcoder2ForCausalLM": Architecture(gguf.MODEL_ARCH.STARCODER2, _starcoder2_defaults),
    "Olmo2ForCausalLM": Architecture(gguf.MODEL_ARCH.OLMO2, _olmo2_defaults, _olmo2_parameters),
    "Gemma3ForCausalLM": Architecture(gguf.MODEL_ARCH.GEMMA3, _gemma3_defaults, _gemma3_parameters, _gemma3_vocab,
                                      _gemma3_rewrite, _gemma3_shape),
    "BertModel": Architecture(gguf.MODEL_ARCH.BERT, _bert_defaults, _bert_parameters, _bert_vocab, rename=_bert_rename),
    "GPT2LMHeadModel": Architecture(gguf.MODEL_ARCH.GPT2, _gpt2_defaults, _gpt2_parameters, rewrite=_gpt2_rewrite,
                                    shape=_gpt2_shape),
    "GPTNeoXForCausalLM": Architecture(gguf.MODEL_ARCH.GPTNEOX, _neox_defaults, _neox_parameters,
                                       rewrite=_neox_rewrite),
    "BloomForCausalLM": Architecture(gguf.MODEL_ARCH.BLOOM, _bloom_defaults, _bloom_parameters, rewrite=_bloom_rewrite,
                                     rename=_bloom_rename),
    "FalconForCausalLM": Architecture(gguf.MODEL_ARCH.FALCON, _falcon_defaults, _falcon_parameters,
                                      rewrite=_falcon_rewrite),
    "MPTForCausalLM": Architecture(gguf.MODEL_ARCH.MPT, _mpt_defaults, _mpt_parameters),
    "CohereForCausalLM": Architecture(gguf.MODEL_ARCH.COMMAND_R, _command_r_defaults, _command_r_parameters),
    "OlmoForCausalLM": Architecture(gguf.MODEL_ARCH.OLMO, _olmo_defaults, _olmo_parameters, rewrite=_olmo_rewrite),
    "OlmoeForCausalLM": Architecture(gguf.MODEL_ARCH.OLMOE, _olmoe_defaults, _olmoe_parameters, experts=_QWEN_EXPERTS),
    "Glm4ForCausalLM": Architecture(gguf.MODEL_ARCH.GLM4, _glm4_defaults, _glm4_parameters, _glm4_vocab),
    "DeepseekV2ForCausalLM": Architecture(gguf.MODEL_ARCH.DEEPSEEK2, _deepseek2_defaults, _deepseek2_parameters,
                                          rewrite=_deepseek2_rewrite, rename=_deepseek2_rename, split=_deepseek2_split,
                                          experts=_DEEPSEEK2_EXPERTS),
    "InternLM2ForCausalLM": Architecture(gguf.MODEL_ARCH.INTERNLM2, _no_defaults, vocab=_internlm2_vocab,
                                         rewrite=_internlm2_rewrite, split=_internlm2_split),
}
