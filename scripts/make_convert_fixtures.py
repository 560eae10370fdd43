"""Make tests/fixtures/convert: tiny Hugging Face checkpoints and what llama.cpp's
convert_hf_to_gguf.py (0.3.36) makes of them.

A checkpoint (``make_checkpoint``) is written without torch, so that tests/test_convert.py can make
the same bytes again: config.json, random weights as safetensors (numpy, a fixed seed; sharded with
model.safetensors.index.json where the case says), and a tokenizer rebuilt with the ``tokenizers``
package from a llama.cpp vocabulary (the default model's, SmolLM2's BPE: tokenizer.json and
tokenizer_config.json with its chat template; or a SentencePiece tokenizer.model written from
llama.cpp's test vocabulary, with added tokens). ``main`` runs convert_hf_to_gguf.py in
/work/venv-oracle (torch 2.13.0 CPU, transformers 4.57.6, the vendored gguf-py) for every case and
outtype and records in goldens.json the digest of each checkpoint file and, per output, each
metadata value (type and encoded bytes) and each tensor (type, shape, bytes): the outputs
themselves are tens of MiB. logits.npz holds, per case, llama-cpp-python's logits on its f32
output after each of LOGIT_TOKENS (the first LOGIT_COLUMNS of each row, and each row's argmax).

    python scripts/make_convert_fixtures.py [--oracle /work/venv-oracle/bin/python]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "convert"
LLAMA_CPP = Path("/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp")
OUTTYPES = ("f32", "f16", "bf16", "q8_0", "auto")
#: a SentencePiece vocabulary in the repository: llama.cpp's test vocabulary's first 512 pieces
SPM_VOCAB = ROOT / "tests" / "fixtures" / "arch" / "llama.gguf"
#: the tokens whose logits llama.cpp computes on each converted checkpoint (ids below every vocabulary's size)
LOGIT_TOKENS = [1, 300, 45, 200, 17, 99, 260, 400]
#: the logits kept of each row (all of a 512-token vocabulary; the first of SmolLM2's 49152), beside each row's argmax
LOGIT_COLUMNS = 1024

_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
          "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 49152,
          "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000, "hidden_act": "silu",
          "tie_word_embeddings": True, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}

_GEMMA = {"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "hidden_size": 64, "intermediate_size": 96,
          "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2,
          "vocab_size": 512, "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
          "hidden_activation": "gelu_pytorch_tanh", "torch_dtype": "bfloat16", "bos_token_id": 1,
          "eos_token_id": 2, "pad_token_id": 0}

#: case -> (config.json, the weights' dtype, shards, tokenizer: "bpe" (SmolLM2's tokenizer.json) or
#: "spm" (a SentencePiece tokenizer.model of llama.cpp's test vocabulary's first 512 pieces))
CASES: dict[str, tuple[dict, str, int, str]] = {
    # SmolLM2-shaped: tied embeddings, bf16 weights, one file
    "llama": (_LLAMA, "bfloat16", 1, "bpe"),
    # Mistral-shaped: an output head of its own, f32 weights in two shards, no rope theta in the config
    "mistral": ({**{k: v for k, v in _LLAMA.items() if k != "rope_theta"}, "architectures": ["MistralForCausalLM"],
                 "model_type": "mistral", "tie_word_embeddings": False, "torch_dtype": "float32",
                 "sliding_window": None}, "float32", 2, "bpe"),
    # Qwen2: QKV biases, f16 weights
    "qwen2": ({**_LLAMA, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "torch_dtype": "float16",
               "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": 32768}, "float16", 1, "bpe"),
    # Llama 3.1-shaped with a SentencePiece vocabulary: llama3 rope scaling (rope_freqs.weight)
    "llama_spm": ({**_LLAMA, "vocab_size": 512, "tie_word_embeddings": False, "torch_dtype": "float32",
                   "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 128}},
                  "float32", 1, "spm"),
    # Gemma: norms stored as weight - 1, a head size of its own, tied embeddings
    "gemma": (_GEMMA, "bfloat16", 1, "spm"),
    # Gemma 2: four norms a layer, soft-capping, a window
    "gemma2": ({**_GEMMA, "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "torch_dtype": "float32",
                "query_pre_attn_scalar": 16, "sliding_window": 4096, "final_logit_softcapping": 30.0,
                "attn_logit_softcapping": 50.0, "cache_implementation": "hybrid"}, "float32", 1, "spm"),
    # Gemma 3 (text): per-head q/k norms, a local rope base, f16 weights (the +1 rounds in f16 as torch's does)
    "gemma3": ({**_GEMMA, "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
                "torch_dtype": "float16", "query_pre_attn_scalar": 16, "sliding_window": 512,
                "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "sliding_window_pattern": 6,
                "rope_scaling": None, "final_logit_softcapping": None, "attn_logit_softcapping": None},
               "float16", 1, "spm"),
    # Qwen3: per-head q/k norms, a head size of its own
    "qwen3": ({**_LLAMA, "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 16,
               "rope_theta": 1000000.0, "max_window_layers": 2, "use_sliding_window": False,
               "sliding_window": None}, "bfloat16", 1, "bpe"),
    # Phi-4-mini-shaped (Phi3ForCausalLM): fused QKV and gate-up, LongRoPE factors, a GPT2Tokenizer vocabulary
    # (not named phi3: llama.cpp looks Phi-3's own special tokens up in models named so)
    "phi4": ({**_LLAMA, "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "tie_word_embeddings": False,
              "max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "rope_theta": 10000.0,
              "rope_scaling": {"type": "longrope", "long_factor": [1.0 + i / 4 for i in range(8)],
                               "short_factor": [1.0 + i / 16 for i in range(8)]},
              "sliding_window": 262144, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # Phi-3-mini-shaped: Phi-3's own reading of a SentencePiece model (not named phi3, as phi4)
    "phi_mini": ({**_LLAMA, "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": 512,
                  "tie_word_embeddings": False, "max_position_embeddings": 4096, "rope_theta": 10000.0,
                  "sliding_window": 2047, "torch_dtype": "bfloat16"}, "bfloat16", 1, "spm"),
    # SmolLM3: Llama's tensors as their own architecture (llama.cpp leaves every 4th layer unrotated)
    "smollm3": ({**_LLAMA, "architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "rope_theta": 2000000.0,
                 "no_rope_layer_interval": 4, "use_sliding_window": False}, "bfloat16", 1, "bpe"),
    # Mixtral: Llama's attention, 4 experts (w1, w2, w3) stacked per layer
    "mixtral": ({**_LLAMA, "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4,
                 "num_experts_per_tok": 2, "tie_word_embeddings": False, "rope_theta": 1000000.0,
                 "sliding_window": None, "torch_dtype": "bfloat16"}, "bfloat16", 2, "bpe"),
    # Qwen2-MoE: 4 experts and a gated shared expert, QKV biases
    "qwen2moe": ({**_LLAMA, "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "num_experts": 4,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64,
                  "decoder_sparse_step": 1, "norm_topk_prob": False, "tie_word_embeddings": False,
                  "rope_theta": 1000000.0, "torch_dtype": "float16"}, "float16", 1, "bpe"),
    # Qwen3-MoE: 4 experts, per-head q/k norms
    "qwen3moe": ({**_LLAMA, "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": 4,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 32, "decoder_sparse_step": 1, "head_dim": 16,
                  "norm_topk_prob": True, "tie_word_embeddings": False, "rope_theta": 1000000.0,
                  "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # StableLM 2: LayerNorms with biases, QKV biases, a quarter of each head rotated
    "stablelm": ({**{k: v for k, v in _LLAMA.items() if k != "rms_norm_eps"}, "architectures": ["StableLmForCausalLM"],
                  "model_type": "stablelm", "tie_word_embeddings": False, "partial_rotary_factor": 0.25,
                  "layer_norm_eps": 1e-05, "use_qkv_bias": True, "use_parallel_residual": False,
                  "qk_layernorm": False, "torch_dtype": "float16"}, "float16", 1, "bpe"),
    # StarCoder2: biases everywhere, a GELU MLP (c_fc, c_proj), tied embeddings
    "starcoder2": ({**{k: v for k, v in _LLAMA.items() if k != "rms_norm_eps"}, "architectures": ["Starcoder2ForCausalLM"],
                    "model_type": "starcoder2", "norm_epsilon": 1e-05, "use_bias": True, "hidden_act": "gelu_pytorch_tanh",
                    "sliding_window": 4096, "torch_dtype": "float32"}, "float32", 1, "bpe"),
    # OLMo 2: q/k norms over all heads, norms after attention and FFN
    "olmo2": ({**_LLAMA, "architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "tie_word_embeddings": False,
               "rope_theta": 500000.0, "torch_dtype": "float32"}, "float32", 1, "bpe"),
}


def _weights(config: dict) -> dict[str, tuple[int, ...]]:
    """HF tensor names and shapes of a llama-like checkpoint of ``config``."""
    kind = config["model_type"]
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head = config.get("head_dim") or d // config["num_attention_heads"]
    q, kv = head * config["num_attention_heads"], head * config["num_key_value_heads"]
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "self_attn.q_proj.weight": (q, d),
                   p + "self_attn.k_proj.weight": (kv, d), p + "self_attn.v_proj.weight": (kv, d),
                   p + "self_attn.o_proj.weight": (d, q), p + "post_attention_layernorm.weight": (d,),
                   p + "mlp.gate_proj.weight": (ff, d), p + "mlp.up_proj.weight": (ff, d),
                   p + "mlp.down_proj.weight": (d, ff)}
        if kind in ("qwen2", "qwen2_moe", "stablelm", "starcoder2"):
            shapes |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                       p + "self_attn.v_proj.bias": (kv,)}
        if kind in ("stablelm", "starcoder2"):
            shapes |= {p + "input_layernorm.bias": (d,), p + "post_attention_layernorm.bias": (d,)}
        if kind == "starcoder2":
            for name in ("gate_proj", "up_proj", "down_proj"):
                del shapes[p + f"mlp.{name}.weight"]
            shapes |= {p + "self_attn.o_proj.bias": (d,), p + "mlp.c_fc.weight": (ff, d), p + "mlp.c_fc.bias": (ff,),
                       p + "mlp.c_proj.weight": (d, ff), p + "mlp.c_proj.bias": (d,)}
        if kind == "phi3":  # one matrix for q, k and v, one for gate and up
            for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
                del shapes[p + f"{name}.weight"]
            shapes |= {p + "self_attn.qkv_proj.weight": (q + 2 * kv, d), p + "mlp.gate_up_proj.weight": (2 * ff, d)}
        if kind in ("mixtral", "qwen2_moe", "qwen3_moe"):  # experts instead of one MLP
            for name in ("gate_proj", "up_proj", "down_proj"):
                del shapes[p + f"mlp.{name}.weight"]
        if kind == "mixtral":
            moe = p + "block_sparse_moe."
            shapes[moe + "gate.weight"] = (config["num_local_experts"], d)
            for x in range(config["num_local_experts"]):
                shapes |= {moe + f"experts.{x}.w1.weight": (ff, d), moe + f"experts.{x}.w2.weight": (d, ff),
                           moe + f"experts.{x}.w3.weight": (ff, d)}
        if kind in ("qwen2_moe", "qwen3_moe"):
            moe_ff = config["moe_intermediate_size"]
            shapes[p + "mlp.gate.weight"] = (config["num_experts"], d)
            for x in range(config["num_experts"]):
                shapes |= {p + f"mlp.experts.{x}.gate_proj.weight": (moe_ff, d),
                           p + f"mlp.experts.{x}.up_proj.weight": (moe_ff, d),
                           p + f"mlp.experts.{x}.down_proj.weight": (d, moe_ff)}
        if kind == "qwen2_moe":
            shared_ff = config["shared_expert_intermediate_size"]
            shapes |= {p + "mlp.shared_expert.gate_proj.weight": (shared_ff, d),
                       p + "mlp.shared_expert.up_proj.weight": (shared_ff, d),
                       p + "mlp.shared_expert.down_proj.weight": (d, shared_ff), p + "mlp.shared_expert_gate.weight": (1, d)}
        if kind in ("qwen3", "qwen3_moe"):
            shapes |= {p + "self_attn.q_norm.weight": (head,), p + "self_attn.k_norm.weight": (head,)}
        if kind == "olmo2":  # norms after attention and FFN only
            del shapes[p + "input_layernorm.weight"]
            shapes |= {p + "self_attn.q_norm.weight": (q,), p + "self_attn.k_norm.weight": (kv,),
                       p + "post_feedforward_layernorm.weight": (d,)}
        if kind in ("gemma2", "gemma3_text"):
            shapes |= {p + "pre_feedforward_layernorm.weight": (d,), p + "post_feedforward_layernorm.weight": (d,)}
        if kind == "gemma3_text":
            shapes |= {p + "self_attn.q_norm.weight": (head,), p + "self_attn.k_norm.weight": (head,)}
    shapes["model.norm.weight"] = (d,)
    if kind in ("stablelm", "starcoder2"):
        shapes["model.norm.bias"] = (d,)
    if not config.get("tie_word_embeddings", True):
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """safetensors' layout: a little-endian u64 header size, the JSON header, the raw data."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        if dtype == "bfloat16":  # the top half of each float32, rounded to nearest even
            bits = array.astype(np.float32).view(np.uint32)
            data = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            data = array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps({"__metadata__": {"format": "pt"}, **header}, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def write_tokenizer(directory: Path, vocab_gguf: Path) -> None:
    """SmolLM2's tokenizer as Hugging Face files, rebuilt from its GGUF vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    from llmcore.gguf import GGUFReader

    with GGUFReader(vocab_gguf) as reader:
        meta = reader.metadata
        tokens, types = list(meta["tokenizer.ggml.tokens"]), list(meta["tokenizer.ggml.token_type"])
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
        template = meta["tokenizer.chat_template"]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, merges)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == 3])
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"add_prefix_space": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
              "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>", "model_max_length": 8192,
              "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False, "chat_template": template}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _protobuf_field(number: int, value: bytes | int | float | str) -> bytes:
    """One protobuf field: a varint, a fixed32 float or a length-delimited string/message."""
    def varint(n: int) -> bytes:
        n &= (1 << 64) - 1
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    if isinstance(value, float):
        return varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def write_sentencepiece(directory: Path, vocab_gguf: Path) -> None:
    """tokenizer.model (SentencePiece's ModelProto: pieces with scores and types, a BPE trainer spec
    with byte fallback, an identity normalizer adding the dummy prefix) from a GGUF's SentencePiece
    vocabulary, and the files that add tokens to it: added_tokens.json, tokenizer_config.json's
    added_tokens_decoder (a special token, a plain one, one with SentencePiece's space)."""
    from llmcore.gguf import GGUFReader

    with GGUFReader(vocab_gguf) as reader:
        meta = reader.metadata
        pieces = list(zip(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.scores"], meta["tokenizer.ggml.token_type"]))
    model = b"".join(_protobuf_field(1, _protobuf_field(1, text) + _protobuf_field(2, float(score)) +
                                     _protobuf_field(3, int(kind))) for text, score, kind in pieces)
    model += _protobuf_field(2, _protobuf_field(3, 2) + _protobuf_field(4, len(pieces)) + _protobuf_field(35, 1))
    model += _protobuf_field(3, _protobuf_field(1, "identity") + _protobuf_field(3, 1) + _protobuf_field(4, 0) +
                             _protobuf_field(5, 1))
    (directory / "tokenizer.model").write_bytes(model)
    n = len(pieces)
    (directory / "added_tokens.json").write_text(json.dumps({"<tool>": n - 4}))
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "pad_token": "<unk>", "tokenizer_class": "LlamaTokenizer",
              "chat_template": "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
                               "<end_of_turn>\n{% endfor %}",
              "added_tokens_decoder": {
                  str(n - 3): {"content": "<start_of_turn>", "special": True, "normalized": False},
                  str(n - 2): {"content": "<end_of_turn>", "special": False, "normalized": False},
                  str(n - 1): {"content": "\u2581\u2581hello", "special": False, "normalized": False}}}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def make_checkpoint(directory: Path, case: str, vocab_gguf: Path, spm_vocab_gguf: Path = SPM_VOCAB) -> None:
    """Write checkpoint ``case`` into ``directory``: ``vocab_gguf`` gives the BPE tokenizer,
    ``spm_vocab_gguf`` the SentencePiece one."""
    config, dtype, shards, tokenizer = CASES[case]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    rng = np.random.default_rng(sum(map(ord, case)))
    tensors = {name: (rng.standard_normal(shape) * (0.02 if len(shape) > 1 else 1.0) + (len(shape) == 1))
               .astype(np.float32) for name, shape in _weights(config).items()}
    names = list(tensors)
    if shards == 1:
        write_safetensors(directory / "model.safetensors", tensors, dtype)
    else:
        weight_map = {}
        for k in range(shards):
            part = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            chosen = names[k::shards]
            write_safetensors(directory / part, {n: tensors[n] for n in chosen}, dtype)
            weight_map |= dict.fromkeys(chosen, part)
        index = {"metadata": {"total_size": 0}, "weight_map": dict(sorted(weight_map.items()))}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    if tokenizer == "spm":
        write_sentencepiece(directory, spm_vocab_gguf)
    else:
        write_tokenizer(directory, vocab_gguf)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def summarize(path: Path) -> dict:
    """A GGUF's metadata (per key: its value type or array element type, and a digest of the encoded
    key and value) and tensors (name -> type, shape, digest of the bytes), in file order."""
    from llmcore.gguf import GGUFReader
    from llmcore.gguf.writer import encode_metadata

    with GGUFReader(path) as reader:
        metadata = {key: [int(reader.metadata_types[key]), digest(encode_metadata(key, value, reader.metadata_types[key]))]
                    for key, value in reader.metadata.items()}
        tensors = {name: [int(info.type), list(info.shape), digest(np.ascontiguousarray(reader.raw(name)).tobytes())]
                   for name, info in reader.tensors.items()}
    return {"metadata": metadata, "tensors": tensors}


def write_pre_tokenizer_table() -> None:
    """llmcore/tools/convert/pre_tokenizers.py: convert_hf_to_gguf.py's get_vocab_base_pre, as data
    (its check text and, per digest of the check text's token ids, the pre-tokenizer's name; a
    digest listed twice keeps its last name, as the function's ifs do)."""
    import re

    source = (LLAMA_CPP / "conversion" / "base.py").read_text(encoding="utf-8")
    body = source[source.index("def get_vocab_base_pre"):source.index("Marker: End get_vocab_base_pre")]
    pairs = re.findall(r'if chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#[^\n]*\n)*\s*res = "([^"]+)"', body)
    check_text = re.search(r"chktxt = ('.*')\n", body).group(1)
    lines = ['"""convert_hf_to_gguf.py\'s BPE pre-tokenizer detection (llama.cpp 0.3.36), generated by',
             'scripts/make_convert_fixtures.py: a tokenizer\'s ids for ``CHECK_TEXT`` (special tokens added),',
             'written as Python prints a list and hashed with sha256, name its pre-tokenizer."""', "",
             f"CHECK_TEXT = {check_text}", "", "#: sha256 of str(ids) -> tokenizer.ggml.pre", "PRE_TOKENIZERS = {"]
    lines += [f'    "{digest}": "{name}",' for digest, name in dict(pairs).items()]
    lines.append("}")
    (ROOT / "llmcore" / "tools" / "convert" / "pre_tokenizers.py").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", default="/work/venv-oracle/bin/python")
    args = parser.parse_args()
    from llmcore.hub.resolve import resolve_model

    write_pre_tokenizer_table()

    vocab = resolve_model(None)
    goldens: dict = {"llama_cpp": "convert_hf_to_gguf.py from llama-cpp-python 0.3.36's source tree, "
                                  "torch 2.13.0+cpu, transformers 4.57.6", "checkpoints": {}, "outputs": {}}
    logits: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for case in CASES:
            directory = Path(tmp) / case
            make_checkpoint(directory, case, vocab)
            goldens["checkpoints"][case] = {p.name: digest(p.read_bytes()) for p in sorted(directory.iterdir())}
            jobs += [[str(directory), str(Path(tmp) / f"{case}-{outtype}.gguf"), outtype] for outtype in OUTTYPES]
        run_oracle(args.oracle, jobs, [str(Path(tmp) / f"{case}-f32.gguf") for case in CASES])
        for case in CASES:
            for outtype in OUTTYPES:
                goldens["outputs"][f"{case}-{outtype}"] = summarize(Path(tmp) / f"{case}-{outtype}.gguf")
            case_logits = np.load(Path(tmp) / f"{case}-f32.logits.npy")
            logits[case], logits[f"{case}-argmax"] = case_logits[:, :LOGIT_COLUMNS], case_logits.argmax(axis=1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")
    np.savez_compressed(OUT / "logits.npz", **logits)


#: run in the oracle's Python, in one process (torch and transformers load once): convert_hf_to_gguf.py's
#: main for each (checkpoint, output, outtype) of argv[1], then llama-cpp-python's logits after each
#: of argv[3]'s tokens on each GGUF of argv[2], saved next to it as .logits.npy
_ORACLE = """
import json, sys
import numpy as np
jobs, models, tokens = (json.loads(arg) for arg in sys.argv[1:4])
sys.path.insert(0, sys.argv[4])
import convert_hf_to_gguf, llama_cpp
for directory, output, outtype in jobs:
    sys.argv[1:] = [directory, "--outfile", output, "--outtype", outtype]
    convert_hf_to_gguf.main()
for path in models:
    llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=64, verbose=False)
    llm.eval(tokens)
    np.save(path.removesuffix(".gguf") + ".logits.npy", np.array(llm.scores[:len(tokens)], dtype=np.float32))
"""


def run_oracle(oracle: str, jobs: list[list[str]], logit_models: list[str]) -> None:
    """convert_hf_to_gguf.py on each of ``jobs`` and llama-cpp-python's logits on ``logit_models``."""
    done = subprocess.run([oracle, "-c", _ORACLE, json.dumps(jobs), json.dumps(logit_models),
                           json.dumps(LOGIT_TOKENS), str(LLAMA_CPP)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the oracle failed:\n{done.stderr[-3000:]}")


if __name__ == "__main__":
    main()
