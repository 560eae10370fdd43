"""The Hugging Face architectures ``llmcore convert`` reads, as convert_hf_to_gguf.py converts them:
per ``config.json`` architecture, the GGUF architecture, the hyper-parameters it adds to the common
ones, and how it rewrites tensors before gguf-py's name map renames them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np

#: (HF name, tensor) -> the tensor convert_hf_to_gguf.py writes
TensorRewrite = Callable[[str, np.ndarray, dict[str, Any]], np.ndarray]


def _no_rewrite(name: str, data: np.ndarray, hparams: dict[str, Any]) -> np.ndarray:
    return data


def _permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """LlamaModel.permute: HF's rotary halves back to llama.cpp's interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _llama_rewrite(name: str, data: np.ndarray, hparams: dict[str, Any]) -> np.ndarray:
    n_head = hparams.get("n_heads", hparams.get("num_attention_heads"))
    n_kv_head = hparams.get("n_kv_heads", hparams.get("num_key_value_heads"))
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        return _permute(data, n_head, n_head)
    if name.endswith(("k_proj.weight", "k_proj.bias")):
        return _permute(data, n_head, n_kv_head)
    return data


def _llama_parameters(kv: gguf.GGUFWriter, hparams: dict[str, Any]) -> None:
    kv.add_vocab_size(hparams["vocab_size"])
    rope_dim = hparams.get("head_dim") or hparams["hidden_size"] // hparams["num_attention_heads"]
    kv.add_rope_dimension_count(rope_dim)


def _no_parameters(kv: gguf.GGUFWriter, hparams: dict[str, Any]) -> None:
    pass


@dataclass(frozen=True)
class Architecture:
    arch: gguf.MODEL_ARCH
    #: config.json keys transformers' config class fills in when they are missing (convert reads the
    #: config through AutoConfig): name -> value computed from the config
    config_defaults: Callable[[dict[str, Any]], dict[str, Any]]
    parameters: Callable[[gguf.GGUFWriter, dict[str, Any]], None] = _no_parameters
    rewrite: TensorRewrite = _no_rewrite
    #: LlamaModel.set_vocab's additions: tokenizer_config.json's add_prefix_space, and no BOS added
    #: for 49152-token vocabularies (meant for granite's small models; SmolLM2's has that size too)
    llama_vocab: bool = False


def _llama_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """LlamaConfig's: a head size and rope base of its own."""
    return {"head_dim": config["hidden_size"] // config["num_attention_heads"], "rope_theta": 10000.0}


def _rope_default(config: dict[str, Any]) -> dict[str, Any]:
    """MistralConfig's and Qwen2Config's: only the rope base (their head_dim stays unset)."""
    return {"rope_theta": 10000.0}


_LLAMA = Architecture(gguf.MODEL_ARCH.LLAMA, _llama_defaults, _llama_parameters, _llama_rewrite, llama_vocab=True)

#: config.json's ``architectures[0]`` -> how to convert it
ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": _LLAMA,
    "MistralForCausalLM": Architecture(gguf.MODEL_ARCH.LLAMA, _rope_default, _llama_parameters, _llama_rewrite,
                                       llama_vocab=True),
    "Qwen2ForCausalLM": Architecture(gguf.MODEL_ARCH.QWEN2, _rope_default),
}
