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
from llmcore.gguf import GGMLType
from llmcore.tools.convert.safetensors import checkpoint_tensors
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
    if "mrope_section" in rope_all:  # [time, height, width, extra]
        kv.add_rope_dimension_sections([*rope_all["mrope_section"], 0, 0, 0, 0][:4])
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


def _no_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Remote-code models, and the model classes that read config.json themselves (Mamba's): convert
    reads config.json as it is."""
    return {}


def _gpt2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    add_gpt2_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))


def _sentencepiece_or_gpt2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Qwen2Model.set_vocab: tokenizer.model if the checkpoint has one, else tokenizer.json."""
    if (ckpt.directory / "tokenizer.model").is_file():
        add_sentencepiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))
    else:
        _gpt2_vocab(kv, ckpt)


@dataclass(frozen=True)
class TensorStack:
    """How a model class stacks a layer's tensors of one kind (per-expert matrices, StableLM's
    per-head norms) into one tensor per layer and kind, written where the last of the group is
    read."""

    #: matches a tensor to stack; named groups: bid (the layer), xid (its index in the stack), kind
    pattern: str
    #: the kinds in the order the stacked tensors are written
    kinds: tuple[str, ...]
    #: the stacked tensor's HF name, from ``bid`` and ``kind``
    merged_name: str
    #: the config keys giving the number of tensors stacked
    count_keys: tuple[str, ...]


@dataclass(frozen=True)
class RawTensor:
    """A tensor the model class writes in a quantized type of its own, whatever the outtype
    (GptOssModel's MXFP4 experts, repacked): GGUF name, type, shape in elements, its bytes."""

    name: str
    type: GGMLType
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray]


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
    #: tensors written first, as they are (the rest of the checkpoint's tensors they are made of
    #: ``rename`` drops)
    raw_tensors: Callable[[Checkpoint], list[RawTensor]] = lambda ckpt: []
    #: the tensors it stacks, each stack written as soon as its layer has all of that stack's kinds
    stacks: tuple[TensorStack, ...] = ()
    #: tensor_force_quant: every matrix in the outtype's type, even those usually kept in F32 (DBRX's router)
    quantize_every_matrix: bool = False
    #: the model class's own changes to the hyper-parameters it loaded (config.json over the defaults)
    hparams: Callable[[dict[str, Any]], dict[str, Any]] = lambda hparams: hparams


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


_QWEN_EXPERTS = TensorStack(r"model\.layers\.(?P<bid>\d+)\.mlp\.experts\.(?P<xid>\d+)\.(?P<kind>\w+)\.weight",
                            ("down_proj", "gate_proj", "up_proj"), "model.layers.{bid}.mlp.experts.{kind}.weight",
                            ("num_local_experts", "num_experts"))
_MIXTRAL_EXPERTS = TensorStack(
    r"model\.layers\.(?P<bid>\d+)\.block_sparse_moe\.experts\.(?P<xid>\d+)\.(?P<kind>\w+)\.weight",
    ("w1", "w2", "w3"), "layers.{bid}.feed_forward.experts.{kind}.weight", ("num_local_experts",))


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


def _stablelm_head_norms(kind: str, count_key: str) -> TensorStack:
    """StableLmModel._stack_qk_norm: StableLM 2 12B's per-head LayerNorms of queries (or keys),
    one [n_head, head_dim] norm per layer."""
    return TensorStack(rf"model\.layers\.(?P<bid>\d+)\.self_attn\.(?P<kind>{kind})\.norms\.(?P<xid>\d+)\.weight",
                       (kind,), "model.layers.{bid}.self_attn.{kind}.weight", (count_key,))


_STABLELM_HEAD_NORMS = (_stablelm_head_norms("q_layernorm", "num_attention_heads"),
                        _stablelm_head_norms("k_layernorm", "num_key_value_heads"))


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

def _classifier_labels(ckpt: Checkpoint) -> list[str] | None:
    """BertModel's cls_out_labels: the classification head's labels in id order, None for the two
    placeholder labels AutoConfig gives a config without any."""
    labels = {int(k): v for k, v in (ckpt.hparams.get("id2label") or {}).items()}
    if not labels or (len(labels) == 2 and labels.get(0) == "LABEL_0"):
        return None
    return [label for _, label in sorted(labels.items())]


def _bert_rename(name: str, ckpt: Checkpoint) -> str | None:
    """BertModel.filter_tensors and modify_tensors: no ``bert.`` prefix, LayerNorm gamma/beta as
    weight/bias, neither the pooler nor the pre-training heads, and a labelled classifier (a
    reranker's, BertForSequenceClassification's) as the head's output projection."""
    name = name.removeprefix("bert.")
    if name in ("classifier.weight", "classifier.bias") and _classifier_labels(ckpt):
        name = name.replace("classifier.", "classifier.out_proj.")
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
        # (GGUFWriter.add_classifier_pooling_type: newer than the gguf-py llmcore requires)
        kv.add_uint32(f"{kv.arch}.classifier.pooling_type", _POOLING[classifier].value)


def _bert_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """BertModel.set_gguf_parameters: an encoder (non-causal) with its pooling."""
    text_parameters(kv, ckpt, ftype)
    kv.add_causal_attention(False)
    _add_pooling_type(kv, ckpt)
    if labels := _classifier_labels(ckpt):
        kv.add_classifier_output_labels(labels)


def _bert_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    add_wordpiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"), ckpt.hparams.get("type_vocab_size", 1))


def _placeholder_labels(config: dict[str, Any]) -> dict[int, str]:
    """PretrainedConfig's id2label without one in the config: num_labels (2 unless it says) of them."""
    return {i: f"LABEL_{i}" for i in range(config.get("num_labels", 2))}


def _bert_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """BertConfig's (PretrainedConfig's labels: num_labels of them, 2 unless the config says)."""
    return {"id2label": _placeholder_labels(config), "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12}


def _roberta_position_offset(ckpt: Checkpoint) -> int:
    """RobertaModel's _position_offset: positions count from pad_token_id + 1 (0 without a pad token)."""
    pad = ckpt.hparams.get("pad_token_id")
    return 0 if pad is None else pad + 1


def _roberta_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """BERT's, with the context the position rows left after the offset give."""
    n_positions = ckpt.hparams["max_position_embeddings"] - _roberta_position_offset(ckpt)
    h = {**ckpt.hparams, "max_position_embeddings": n_positions}
    _bert_parameters(kv, Checkpoint(ckpt.directory, h), ftype)


def _roberta_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """RobertaModel.set_vocab: tokenizer.json's BPE vocabulary (token types counted), else BERT's."""
    if not (ckpt.directory / "tokenizer.json").is_file():
        _bert_vocab(kv, ckpt)
        return
    _gpt2_vocab(kv, ckpt)
    kv.add_token_type_count(ckpt.hparams.get("type_vocab_size", 1))


def _roberta_rename(name: str, ckpt: Checkpoint) -> str | None:
    """RobertaModel.filter_tensors: no ``roberta.`` prefix, then BERT's."""
    return _bert_rename(name.removeprefix("roberta."), ckpt)


def _roberta_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    if name == "embeddings.position_embeddings.weight":
        return (shape[0] - _roberta_position_offset(ckpt), *shape[1:])
    return shape


def _roberta_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """RobertaModel.modify_tensors: the position rows before the offset dropped."""
    return data[_roberta_position_offset(ckpt):] if name == "embeddings.position_embeddings.weight" else data


def _roberta_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """RobertaConfig's."""
    return {**_bert_defaults(config), "vocab_size": 50265, "pad_token_id": 1}


def _jina_bert_v2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """JinaBertV2Model.set_vocab: BERT's WordPiece, or a RobertaTokenizer's BPE (two token types)."""
    tokenizer_class = tokenizer_config(ckpt.directory).get("tokenizer_class", "BertTokenizer")
    if tokenizer_class == "BertTokenizer":
        _bert_vocab(kv, ckpt)
        return
    pre_tokenizer = (read_json(ckpt.directory / "tokenizer.json").get("pre_tokenizer") or {}).get("type") \
        if (ckpt.directory / "tokenizer.json").is_file() else None
    if tokenizer_class != "RobertaTokenizer" or pre_tokenizer == "Whitespace":
        raise LLMCoreError(f"{ckpt.directory}: jina-bert-v2's {tokenizer_class} tokenizer "
                           f"{'(Whitespace pre-tokenizer) ' if pre_tokenizer == 'Whitespace' else ''}is not supported")
    _gpt2_vocab(kv, ckpt)
    kv.add_token_type_count(2)


def _nomic_bert_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """NomicBertModel.__init__ (remote code: config.json as it is): nomic-embed-text v1/v1.5's trained
    context of 2048 (of the 8192 n_positions says), after checking the config is the layout llama.cpp
    reads."""
    if config.get("moe_every_n_layers"):
        raise LLMCoreError("nomic-embed-text-v2-moe (nomic-bert-moe) is not supported yet")
    expected = {"activation_function": "swiglu", "causal": False, "qkv_proj_bias": False, "mlp_fc1_bias": False,
                "mlp_fc2_bias": False, "prenorm": False, "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False,
                "rotary_emb_scale_base": None}
    if odd := [key for key, value in expected.items() if config.get(key, "missing") != value]:
        raise LLMCoreError(f"nomic-bert's {', '.join(odd)} differ from the layout llama.cpp reads")
    positions = (config["n_positions"], config.get("max_trained_positions", 2048))
    if positions not in ((8192, 2048), (2048, 2048)):
        raise LLMCoreError(f"nomic-bert's n_positions {positions[0]} with max_trained_positions "
                           f"{positions[1]} are not a known model's")
    return {**config, "n_positions": 2048 if positions[0] == 8192 else 512}


def _modern_bert_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """ModernBertModel.set_gguf_parameters: BERT's, the local attention's window and the pattern of
    global layers, the FFN's activation."""
    _bert_parameters(kv, ckpt, ftype)
    h = ckpt.hparams
    kv.add_sliding_window(h["local_attention"])
    if (pattern := h.get("global_attn_every_n_layers")) is not None:
        kv.add_sliding_window_pattern(pattern)
    kv.add_rope_scaling_type(gguf.RopeScalingType.NONE)
    kv.add_vocab_size(h["vocab_size"])
    if hidden_act := h.get("hidden_activation"):
        kv.add_string(f"{kv.arch}.hidden_activation", hidden_act)  # (add_hidden_act: newer than llmcore's gguf-py)


def _modern_bert_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """ModernBertModel.set_vocab: BOS, EOS and SEP added, a BPE vocabulary."""
    kv.add_add_bos_token(True)
    kv.add_add_eos_token(True)
    kv.add_add_sep_token(True)
    _gpt2_vocab(kv, ckpt)


def _modern_bert_rename(name: str, ckpt: Checkpoint) -> str | None:
    """ModernBertModel.filter_tensors: no ``model.`` prefix, then BERT's."""
    return _bert_rename(name.removeprefix("model."), ckpt)


def _modern_bert_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """ModernBertConfig's (a classifier pooling of its own even without a classifier)."""
    return {"id2label": _placeholder_labels(config), "vocab_size": 50368,
            "hidden_size": 768, "intermediate_size": 1152, "num_hidden_layers": 22, "num_attention_heads": 12,
            "hidden_activation": "gelu", "max_position_embeddings": 8192, "norm_eps": 1e-5,
            "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "global_attn_every_n_layers": 3,
            "local_attention": 128, "classifier_pooling": "cls"}


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


# --- Phi-2, StarCoder, Seed-OSS, ERNIE 4.5 -------------------------------------------------------

def _phi2_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """Phi2Model.set_gguf_parameters: a feed-forward width of 4 n_embd, no BOS added."""
    n_embd, n_head = ckpt.find("hidden_size", "n_embd"), ckpt.find("num_attention_heads", "n_head")
    kv.add_context_length(ckpt.find("n_positions", "max_position_embeddings"))
    kv.add_embedding_length(n_embd)
    kv.add_feed_forward_length(4 * n_embd)
    kv.add_block_count(ckpt.block_count)
    kv.add_head_count(n_head)
    kv.add_head_count_kv(n_head)
    kv.add_layer_norm_eps(ckpt.find("layer_norm_epsilon", "layer_norm_eps"))
    kv.add_rope_dimension_count(int(ckpt.rope["partial_rotary_factor"] * n_embd) // n_head)
    kv.add_file_type(ftype)
    kv.add_add_bos_token(False)


def _phi2_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """PhiConfig's."""
    return {"hidden_size": 2048, "num_attention_heads": 32, "max_position_embeddings": 2048, "layer_norm_eps": 1e-5,
            "rope_theta": 10000.0, "rope_scaling": None, "partial_rotary_factor": 0.5,
            "num_key_value_heads": config.get("num_key_value_heads") or config.get("num_attention_heads", 32)}


def _starcoder_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """StarCoderModel.set_gguf_parameters: multi-query attention (one KV head), whatever the config says."""
    h = ckpt.hparams
    kv.add_context_length(h["n_positions"])
    kv.add_embedding_length(h["n_embd"])
    kv.add_feed_forward_length(4 * h["n_embd"])
    kv.add_block_count(ckpt.block_count)
    kv.add_head_count(h["n_head"])
    kv.add_head_count_kv(1)
    kv.add_layer_norm_eps(h["layer_norm_epsilon"])
    kv.add_file_type(ftype)


def _starcoder_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """GPTBigCodeConfig's."""
    return {"n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "layer_norm_epsilon": 1e-5,
            "multi_query": True}


def _seed_oss_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """SeedOssConfig's."""
    return {"num_key_value_heads": 8, "max_position_embeddings": 524288, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "rope_scaling": None, "head_dim": 128}


def _ernie4_5_rename(name: str, ckpt: Checkpoint) -> str | None:
    """Ernie4_5Model.filter_tensors: ``ernie.`` read as ``model.``; its fused projections (of the
    checkpoints before transformers' own) are not read here."""
    if name.endswith(("qkv_proj.weight", "up_gate_proj.weight")):
        raise LLMCoreError(f"{ckpt.directory}: ERNIE 4.5's fused {name} is not supported yet; "
                           "transformers' checkpoints (separate q/k/v and gate/up) are")
    return name.replace("ernie.", "model.")


def _ernie4_5_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Ernie4_5Model.set_vocab: SentencePiece, tokenizer_config.json's add_prefix_space."""
    _sentencepiece_vocab(kv, ckpt)
    if (prefix := tokenizer_config(ckpt.directory).get("add_prefix_space")) is not None:
        kv.add_add_space_prefix(prefix)


def _ernie4_5_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Ernie4_5Config's."""
    return {"num_key_value_heads": 2, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": None, "head_dim": config.get("head_dim") or 128}


# --- Mamba, Mamba-2 -------------------------------------------------------------------------------

def _padded_vocab(ckpt: Checkpoint, default_multiple: int) -> int:
    """MambaModel.set_vocab's vocabulary size: rounded up to pad_vocab_size_multiple."""
    multiple = ckpt.hparams.get("pad_vocab_size_multiple", default_multiple)
    return -(ckpt.hparams["vocab_size"] // -multiple) * multiple


def _mamba_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """MambaModel.set_vocab: tokenizer.json else tokenizer.model, for the size padded to 8."""
    if (ckpt.directory / "tokenizer.json").is_file():
        add_gpt2_vocab(kv, ckpt.directory, _padded_vocab(ckpt, 8))
    else:
        add_sentencepiece_vocab(kv, ckpt.directory, _padded_vocab(ckpt, 8))


def _mamba2_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """Mamba2Model.set_vocab: tokenizer.model else tokenizer.json, for the size padded to 16."""
    if (ckpt.directory / "tokenizer.model").is_file():
        add_sentencepiece_vocab(kv, ckpt.directory, _padded_vocab(ckpt, 16))
    else:
        add_gpt2_vocab(kv, ckpt.directory, _padded_vocab(ckpt, 16))


def _add_state_space_shape(kv: gguf.GGUFWriter, ckpt: Checkpoint, d_model: int, d_inner: int, d_state: int,
                           dt_rank: int) -> None:
    """The keys Mamba's and Mamba-2's set_gguf_parameters share, in their order (an arbitrary context,
    no feed-forward or attention heads)."""
    kv.add_context_length(2**20)
    kv.add_embedding_length(d_model)
    kv.add_feed_forward_length(0)
    kv.add_head_count(0)
    kv.add_block_count(ckpt.block_count)
    kv.add_ssm_conv_kernel(ckpt.find("conv_kernel", "d_conv") or 4)
    kv.add_ssm_inner_size(d_inner)
    kv.add_ssm_state_size(d_state)
    kv.add_ssm_time_step_rank(dt_rank)


def _mamba_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """MambaModel.set_gguf_parameters: the state space's sizes (RMS norms of dt, B and C for Falcon-Mamba)."""
    d_model = ckpt.find("hidden_size", "d_model")
    d_inner = ckpt.find("intermediate_size", "d_inner") or 2 * d_model
    if d_inner != 2 * d_model:
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: Mamba's inner size must be twice its width")
    _add_state_space_shape(kv, ckpt, d_model, d_inner, ckpt.find("state_size", "d_state") or 16,
                           ckpt.find("time_step_rank", "dt_rank") or -(d_model // -16))
    kv.add_layer_norm_rms_eps(ckpt.find("layer_norm_epsilon", "rms_norm_eps") or 1e-5)
    kv.add_ssm_dt_b_c_rms(ckpt.hparams.get("model_type") == "falcon_mamba")
    kv.add_file_type(ftype)


def _mamba_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    """conv1d's [d_inner, 1, d_conv] squeezed."""
    return tuple(n for n in shape if n != 1) if name.endswith("mixer.conv1d.weight") else shape


def _mamba2_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    """Mamba's, A and D given a trailing 1, the gated norm one row per group."""
    if name.endswith(("mixer.A_log", "mixer.D")):
        return (*shape, 1)
    if name.endswith("mixer.norm.weight"):
        n_group = ckpt.find("n_groups") or 1
        return (n_group, shape[0] // n_group)
    return _mamba_shape(name, shape, ckpt)


def _negated_exp_of_a_log(name: str, data: np.ndarray) -> np.ndarray:
    """A = -exp(A_log), computed in the tensor's own type as torch does. A float16 A_log's exp is taken
    in float64 and rounded to float32, then to float16 (torch's float32 exp, then its rounding): numpy's
    float16 exp goes through its own float32 kernel, whose AVX-512 form rounds a few values otherwise."""
    if not name.endswith(".A_log"):
        return data
    if data.dtype == np.float16:
        return -np.exp(data.astype(np.float64)).astype(np.float32).astype(np.float16)
    return -np.exp(data)


def _mamba_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    return _negated_exp_of_a_log(name, data.reshape(_mamba_shape(name, data.shape, ckpt)))


def _mamba2_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    return _negated_exp_of_a_log(name, data.reshape(_mamba2_shape(name, data.shape, ckpt)))


def _mamba2_rename(name: str, ckpt: Checkpoint) -> str | None:
    """Mamba2Model.filter_tensors: Mamba-Codestral's ``model.`` prefix dropped, dt_bias as dt_proj's bias."""
    if name.startswith(("model.backbone", "model.lm_head")):
        name = name.removeprefix("model.")
    if name.endswith(".dt_bias"):
        name = name.removesuffix(".dt_bias") + ".dt_proj.bias"
    return name


def _mamba2_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """Mamba2Model.set_gguf_parameters."""
    d_model = ckpt.find("hidden_size", "d_model", "dim")
    expand = ckpt.find("mamba_expand", "expand") or 2
    d_inner = ckpt.find("mamba_d_ssm", "intermediate_size", "d_inner") or expand * d_model
    head_dim = ckpt.find("mamba_d_head", "head_dim") or 64
    if d_inner != expand * d_model or d_inner % head_dim:
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: Mamba-2's inner size must be expand times its width "
                           "and a multiple of head_dim")
    _add_state_space_shape(kv, ckpt, d_model, d_inner, ckpt.find("state_size", "d_state") or 128, d_inner // head_dim)
    kv.add_ssm_group_count(ckpt.find("n_groups") or 1)
    kv.add_layer_norm_rms_eps(ckpt.find("layer_norm_epsilon", "rms_norm_eps") or 1e-5)
    kv.add_file_type(ftype)


_MAMBA = Architecture(gguf.MODEL_ARCH.MAMBA, _no_defaults, _mamba_parameters, _mamba_vocab, _mamba_rewrite,
                      _mamba_shape)
_MAMBA2 = Architecture(gguf.MODEL_ARCH.MAMBA2, _no_defaults, _mamba2_parameters, _mamba2_vocab, _mamba2_rewrite,
                       _mamba2_shape, rename=_mamba2_rename)


# --- GPT-OSS --------------------------------------------------------------------------------------

def _gpt_oss_rename(name: str, ckpt: Checkpoint) -> str | None:
    """GptOssModel.filter_tensors and modify_tensors' names: sinks as weights, the stacked experts'
    down projection (and its bias) named as a weight; MXFP4 blocks and scales are ``_gpt_oss_mxfp4``'s."""
    if name.endswith(("_blocks", "_scales")):
        return None
    if "sinks" in name:
        name += ".weight"
    if name.endswith("down_proj_bias"):
        return name.replace("down_proj_bias", "down_proj.bias")
    return name.replace("down_proj", "down_proj.weight") if name.endswith("mlp.experts.down_proj") else name


def _gpt_oss_split(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> list[tuple[str, tuple[int, ...]]]:
    """The experts' fused gate_up (rows alternating gate, up) as gate and up, each [experts, n_ff, n_embd]."""
    if name.endswith("mlp.experts.gate_up_proj"):
        n_expert, n_embd, n_ff2 = shape
        return [(name.replace("gate_up_proj", part), (n_expert, n_ff2 // 2, n_embd))
                for part in ("gate_proj.weight", "up_proj.weight")]
    if name.endswith("mlp.experts.gate_up_proj_bias"):
        return [(name.replace("gate_up_proj_bias", part), (*shape[:-1], shape[-1] // 2))
                for part in ("gate_proj.bias", "up_proj.bias")]
    return [(name, shape)]


def _gpt_oss_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    return (*shape[:-2], shape[-1], shape[-2]) if name.endswith("mlp.experts.down_proj.weight") else shape


def _gpt_oss_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """Unquantized experts stored input-major: transposed; gate and up taken from alternate rows."""
    if name.endswith("mlp.experts.down_proj.weight"):
        return data.swapaxes(-1, -2)
    first = 0 if ".gate_proj." in name else 1
    if name.endswith(("mlp.experts.gate_proj.weight", "mlp.experts.up_proj.weight")):
        return data.swapaxes(-1, -2)[:, first::2, :]
    if name.endswith(("mlp.experts.gate_proj.bias", "mlp.experts.up_proj.bias")):
        return data[..., first::2]
    return data


def _mxfp4_nibbles_interleaved(blocks: np.ndarray) -> np.ndarray:
    """GptOssModel.transform_nibble_layout: each 16-byte block's 32 codes from the low-half, high-half
    order of the checkpoint to ggml's block_mxfp4 order."""
    swapped = ((blocks & 0x0F) << 4) | (blocks >> 4)
    first, second = np.split(swapped, 2, axis=-1)
    first = np.stack([first & 0xF0, first << 4], axis=-1).reshape(blocks.shape)
    second = np.stack([second >> 4, second & 0x0F], axis=-1).reshape(blocks.shape)
    merged = first | second
    return ((merged & 0xF0) >> 4) | ((merged & 0x0F) << 4)


def _mxfp4_repacked(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """GptOssModel.repack_mxfp4: each block's E8M0 scale byte before its 16 code bytes."""
    data = np.concatenate([scales[..., None], _mxfp4_nibbles_interleaved(blocks)], axis=-1)
    return data.reshape(*data.shape[:-2], -1)


def _gpt_oss_mxfp4(ckpt: Checkpoint) -> list[RawTensor]:
    """GptOssModel.generate_extra_tensors: the MXFP4 experts (blocks [experts, rows, blocks, 16 bytes]
    and scales [experts, rows, blocks]), down then gate and up (gate_up's alternate rows) per layer,
    where each scales tensor is read."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT_OSS, ckpt.block_count)
    stored = {t.name: t for t in checkpoint_tensors(ckpt.directory)}
    raw = []
    for name, scales in stored.items():
        if not name.endswith(("mlp.experts.down_proj_scales", "mlp.experts.gate_up_proj_scales")):
            continue
        blocks = stored[name.replace("_scales", "_blocks")]
        n_expert, rows, n_blocks, _ = blocks.shape
        parts = [("down_proj", slice(None))] if "down_proj" in name else [("gate_proj", slice(0, None, 2)),
                                                                          ("up_proj", slice(1, None, 2))]
        for part, row_slice in parts:
            new_name = names.get_name(name.rsplit(".", 1)[0] + f".{part}.weight", try_suffixes=(".weight",))
            shape = (n_expert, len(range(rows)[row_slice]), n_blocks * 32)
            raw.append(RawTensor(new_name, GGMLType.MXFP4, shape,
                                 lambda b=blocks, s=scales, r=row_slice: _mxfp4_repacked(b.load()[:, r], s.load()[:, r])))
    return raw


def _gpt_oss_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """GptOssModel.set_gguf_parameters."""
    text_parameters(kv, ckpt, ftype)
    kv.add_sliding_window(ckpt.hparams["sliding_window"])
    kv.add_expert_feed_forward_length(ckpt.hparams["intermediate_size"])


def _gpt_oss_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """GptOssConfig's."""
    return {"num_local_experts": 128, "head_dim": 64, "num_key_value_heads": 8, "sliding_window": 128,
            "rope_theta": 150000.0, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                             "truncate": False, "original_max_position_embeddings": 4096},
            "num_experts_per_tok": 4}


# --- DBRX -----------------------------------------------------------------------------------------

_DBRX_EXPERTS = ("ffn.experts.mlp.w1", "ffn.experts.mlp.v1", "ffn.experts.mlp.w2")


def _dbrx_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """DbrxModel.set_gguf_parameters."""
    h = ckpt.hparams
    ffn, attn = h["ffn_config"], h["attn_config"]
    kv.add_block_count(ckpt.block_count)
    kv.add_context_length(h["max_seq_len"])
    kv.add_embedding_length(h["d_model"])
    kv.add_feed_forward_length(ffn["ffn_hidden_size"])
    kv.add_head_count(h["n_heads"])
    kv.add_head_count_kv(attn["kv_n_heads"])
    kv.add_rope_freq_base(attn["rope_theta"])
    if attn["clip_qkv"] is None:
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: DBRX without attn_config's clip_qkv is not supported "
                           "(convert_hf_to_gguf.py writes none)")
    kv.add_clamp_kqv(attn["clip_qkv"])
    kv.add_expert_count(ffn["moe_num_experts"])
    kv.add_expert_used_count(ffn["moe_top_k"])
    kv.add_layer_norm_eps(1e-5)
    kv.add_file_type(ftype)


def _dbrx_rename(name: str, ckpt: Checkpoint) -> str | None:
    """The experts' matrices are stored without ``.weight``."""
    return name + ".weight" if name.endswith(_DBRX_EXPERTS) else name


def _dbrx_expert_sizes(ckpt: Checkpoint) -> tuple[int, int, int]:
    ffn = ckpt.hparams["ffn_config"]
    return ffn["moe_num_experts"], ffn["ffn_hidden_size"], ckpt.hparams["d_model"]


def _is_dbrx_expert(name: str) -> bool:
    return name.removesuffix(".weight").endswith(_DBRX_EXPERTS)


def _dbrx_shape(name: str, shape: tuple[int, ...], ckpt: Checkpoint) -> tuple[int, ...]:
    """DbrxModel.modify_tensors: each experts' matrix [n_expert * n_ff, n_embd] as [n_expert, n_ff, n_embd],
    the down projection's transposed to [n_expert, n_embd, n_ff]."""
    if not _is_dbrx_expert(name):
        return shape
    n_expert, n_ff, n_embd = _dbrx_expert_sizes(ckpt)
    return (n_expert, n_embd, n_ff) if name.endswith("mlp.w2.weight") else (n_expert, n_ff, n_embd)


def _dbrx_rewrite(name: str, data: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    if not _is_dbrx_expert(name):
        return data
    data = data.reshape(_dbrx_expert_sizes(ckpt))
    return data.transpose(0, 2, 1) if name.endswith("mlp.w2.weight") else data


def _dbrx_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The nested configs with their defaults (config.json's own would replace the defaults' whole)."""
    defaults = _dbrx_defaults(hparams)
    return {**hparams, "attn_config": defaults["attn_config"], "ffn_config": defaults["ffn_config"]}


def _dbrx_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """DbrxConfig's, its attention's and FFN's configs filled in too."""
    return {"d_model": 2048, "n_heads": 16, "n_layers": 24, "max_seq_len": 2048, "vocab_size": 32000,
            "attn_config": {"clip_qkv": None, "kv_n_heads": 1, "rope_theta": 10000.0,
                            **(config.get("attn_config") or {})},
            "ffn_config": {"ffn_hidden_size": 3584, "moe_num_experts": 4, "moe_top_k": 1,
                           **(config.get("ffn_config") or {})}}


# --- EXAONE, Orion (remote code: config.json read as it is) ----------------------------------------

def _exaone_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """ExaoneModel.set_gguf_parameters: TextModel's, the rotated part of each head."""
    h = ckpt.hparams
    if h.get("activation_function") != "silu":
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: EXAONE's activation_function must be silu")
    text_parameters(kv, ckpt, ftype)
    rotary = ckpt.rope.get("partial_rotary_factor")
    head_dim = h["hidden_size"] // h["num_attention_heads"]
    kv.add_rope_dimension_count(int((1.0 if rotary is None else rotary) * head_dim))


def _orion_parameters(kv: gguf.GGUFWriter, ckpt: Checkpoint, ftype: gguf.LlamaFileType) -> None:
    """OrionModel.set_gguf_parameters: its rms_norm_eps is a LayerNorm's epsilon."""
    h = ckpt.hparams
    n_ctx = ckpt.find("max_sequence_length", "max_position_embeddings", "model_max_length")
    if n_ctx is None:
        raise LLMCoreError(f"{ckpt.directory / 'config.json'}: no context length (max_sequence_length, "
                           "max_position_embeddings or model_max_length)")
    kv.add_file_type(ftype)
    kv.add_tensor_data_layout("Meta AI original pth")
    kv.add_context_length(n_ctx)
    kv.add_embedding_length(h["hidden_size"])
    kv.add_block_count(ckpt.block_count)
    kv.add_feed_forward_length(h["intermediate_size"])
    kv.add_head_count(h["num_attention_heads"])
    kv.add_head_count_kv(h.get("num_key_value_heads", h["num_attention_heads"]))
    kv.add_layer_norm_eps(h["rms_norm_eps"])


def _sentencepiece_vocab(kv: gguf.GGUFWriter, ckpt: Checkpoint) -> None:
    """_set_vocab_sentencepiece."""
    add_sentencepiece_vocab(kv, ckpt.directory, ckpt.hparams.get("vocab_size"))


# --- Qwen2-VL -------------------------------------------------------------------------------------

def _qwen2vl_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Qwen2VLConfig's (Qwen2_5_VLConfig's alike): the text config from config.json's text_config, or
    else from its root keys, over Qwen2VLTextConfig's defaults; its rope scaling type mrope read as
    default (llama.cpp reads only the sections)."""
    text = {"vocab_size": 152064, "hidden_size": 8192, "intermediate_size": 29568, "num_hidden_layers": 80,
            "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-5, "rope_theta": 1_000_000.0, "use_sliding_window": False, "rope_scaling": None,
            **(config.get("text_config") or config)}
    text["num_key_value_heads"] = text["num_key_value_heads"] or text["num_attention_heads"]
    text["sliding_window"] = text.get("sliding_window", 4096) if text["use_sliding_window"] else None
    if (rope := text["rope_scaling"]) is not None and "type" in rope:
        rope = {**rope, "type": "default" if rope["type"] == "mrope" else rope["type"]}
        text["rope_scaling"] = {**rope, "rope_type": rope["type"]}
    text.pop("architectures", None)
    return {"text_config": text}


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


_LLAMA = Architecture(gguf.MODEL_ARCH.LLAMA, _llama_defaults, _llama_parameters, _llama_vocab, _llama_rewrite,
                      extra_tensors=_llama3_rope_factors)

_QWEN2VL = Architecture(gguf.MODEL_ARCH.QWEN2VL, _qwen2vl_defaults, vocab=_sentencepiece_or_gpt2_vocab)
_ERNIE4_5 = Architecture(gguf.MODEL_ARCH.ERNIE4_5, _ernie4_5_defaults, vocab=_ernie4_5_vocab, rename=_ernie4_5_rename)
_BERT = Architecture(gguf.MODEL_ARCH.BERT, _bert_defaults, _bert_parameters, _bert_vocab, rename=_bert_rename)
_JINA_BERT_V2 = dataclasses.replace(_BERT, arch=gguf.MODEL_ARCH.JINA_BERT_V2, vocab=_jina_bert_v2_vocab)
_NOMIC_BERT = dataclasses.replace(_BERT, arch=gguf.MODEL_ARCH.NOMIC_BERT, config_defaults=_no_defaults,
                                  hparams=_nomic_bert_hparams)
_ROBERTA = Architecture(gguf.MODEL_ARCH.BERT, _roberta_defaults, _roberta_parameters, _roberta_vocab,
                        _roberta_rewrite, _roberta_shape, rename=_roberta_rename)
_MODERN_BERT = Architecture(gguf.MODEL_ARCH.MODERN_BERT, _modern_bert_defaults, _modern_bert_parameters,
                            _modern_bert_vocab, rename=_modern_bert_rename)

#: config.json's ``architectures[0]`` -> how to convert it
ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": _LLAMA,
    "MistralForCausalLM": Architecture(gguf.MODEL_ARCH.LLAMA, _rope_default, _llama_parameters, _llama_vocab,
                                       _llama_rewrite, extra_tensors=_llama3_rope_factors),
    "SmolLM3ForCausalLM": Architecture(gguf.MODEL_ARCH.SMOLLM3, _smollm3_defaults, _llama_parameters, _llama_vocab,
                                       _llama_rewrite, extra_tensors=_llama3_rope_factors),
    "Qwen2ForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN2, _rope_default, vocab=_sentencepiece_or_gpt2_vocab),
    "MixtralForCausalLM": Architecture(gguf.MODEL_ARCH.LLAMA, _mixtral_defaults, _llama_parameters, _llama_vocab,
                                       _llama_rewrite, extra_tensors=_llama3_rope_factors, stacks=(_MIXTRAL_EXPERTS,)),
    "Qwen2MoeForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN2MOE, _qwen2moe_defaults, _qwen2moe_parameters,
                                        stacks=(_QWEN_EXPERTS,)),
    "Qwen3MoeForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN3MOE, _qwen3moe_defaults, _qwen2moe_parameters,
                                        stacks=(_QWEN_EXPERTS,)),
    "Qwen3ForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN3, _qwen3_defaults, vocab=_sentencepiece_or_gpt2_vocab),
    "GemmaForCausalLM": Architecture(gguf.MODEL_ARCH.GEMMA, _gemma_defaults, _gemma_parameters, _gemma_vocab,
                                     _plus_one_norms, skipped=("lm_head.weight",)),
    "Gemma2ForCausalLM": Architecture(gguf.MODEL_ARCH.GEMMA2, _gemma2_defaults, _gemma2_parameters,
                                      _sentencepiece_without_space_prefix, _plus_one_norms, skipped=("lm_head.weight",)),
    "Phi3ForCausalLM": Architecture(gguf.MODEL_ARCH.PHI3, _phi3_defaults, _phi3_parameters, _phi3_vocab,
                                    extra_tensors=_phi3_rope_factors),
    "StableLmForCausalLM": Architecture(gguf.MODEL_ARCH.STABLELM, _stablelm_defaults, _stablelm_parameters,
                                        _stablelm_vocab, stacks=_STABLELM_HEAD_NORMS),
    "Starcoder2ForCausalLM": Architecture(gguf.MODEL_ARCH.STARCODER2, _starcoder2_defaults),
    "Olmo2ForCausalLM": Architecture(gguf.MODEL_ARCH.OLMO2, _olmo2_defaults, _olmo2_parameters),
    "Gemma3ForCausalLM": Architecture(gguf.MODEL_ARCH.GEMMA3, _gemma3_defaults, _gemma3_parameters, _gemma3_vocab,
                                      _gemma3_rewrite, _gemma3_shape),
    "BertModel": _BERT,
    "BertForSequenceClassification": _BERT,
    "BertForMaskedLM": _BERT,
    "NomicBertModel": _NOMIC_BERT,
    "JinaBertModel": _JINA_BERT_V2,
    "JinaBertForMaskedLM": _JINA_BERT_V2,
    "RobertaModel": _ROBERTA,
    "RobertaForSequenceClassification": _ROBERTA,
    "ModernBertModel": _MODERN_BERT,
    "ModernBertForSequenceClassification": _MODERN_BERT,
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
    "OlmoeForCausalLM": Architecture(gguf.MODEL_ARCH.OLMOE, _olmoe_defaults, _olmoe_parameters,
                                     stacks=(_QWEN_EXPERTS,)),
    "Glm4ForCausalLM": Architecture(gguf.MODEL_ARCH.GLM4, _glm4_defaults, _glm4_parameters, _glm4_vocab),
    "DeepseekV2ForCausalLM": Architecture(gguf.MODEL_ARCH.DEEPSEEK2, _deepseek2_defaults, _deepseek2_parameters,
                                          rewrite=_deepseek2_rewrite, rename=_deepseek2_rename, split=_deepseek2_split,
                                          stacks=(_DEEPSEEK2_EXPERTS,)),
    "PhiForCausalLM": Architecture(gguf.MODEL_ARCH.PHI2, _phi2_defaults, _phi2_parameters),
    "GPTBigCodeForCausalLM": Architecture(gguf.MODEL_ARCH.STARCODER, _starcoder_defaults, _starcoder_parameters),
    "SeedOssForCausalLM": Architecture(gguf.MODEL_ARCH.SEED_OSS, _seed_oss_defaults),
    "Ernie4_5ForCausalLM": _ERNIE4_5,
    "Ernie4_5_ForCausalLM": _ERNIE4_5,
    "MambaForCausalLM": _MAMBA,
    "MambaLMHeadModel": _MAMBA,
    "FalconMambaForCausalLM": _MAMBA,
    "Mamba2ForCausalLM": _MAMBA2,
    "GptOssForCausalLM": Architecture(gguf.MODEL_ARCH.GPT_OSS, _gpt_oss_defaults, _gpt_oss_parameters,
                                      rewrite=_gpt_oss_rewrite, shape=_gpt_oss_shape, rename=_gpt_oss_rename,
                                      split=_gpt_oss_split, raw_tensors=_gpt_oss_mxfp4),
    "Qwen2VLForConditionalGeneration": _QWEN2VL,
    "Qwen2_5_VLForConditionalGeneration": _QWEN2VL,
    "DbrxForCausalLM": Architecture(gguf.MODEL_ARCH.DBRX, _dbrx_defaults, _dbrx_parameters, rewrite=_dbrx_rewrite,
                                    shape=_dbrx_shape, rename=_dbrx_rename, hparams=_dbrx_hparams,
                                    quantize_every_matrix=True),
    "ExaoneForCausalLM": Architecture(gguf.MODEL_ARCH.EXAONE, _no_defaults, _exaone_parameters,
                                      extra_tensors=_llama3_rope_factors),
    "OrionForCausalLM": Architecture(gguf.MODEL_ARCH.ORION, _no_defaults, _orion_parameters, _sentencepiece_vocab),
    "InternLM2ForCausalLM": Architecture(gguf.MODEL_ARCH.INTERNLM2, _no_defaults, vocab=_internlm2_vocab,
                                         rewrite=_internlm2_rewrite, split=_internlm2_split),
}
