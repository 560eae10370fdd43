"""Make the embedding goldens of tests/test_embeddings.py: tiny random-weight encoders (and a
decoder used for embeddings) and the embeddings llama.cpp 0.3.36 computes for a batch of three
sequences, with each pooling type, flash attention off and on.

    /work/venv-oracle/bin/python scripts/make_embedding_goldens.py [NAME ...]

Writes ``tests/fixtures/embeddings/<name>.gguf`` and ``<name>.npz``: ``tokens`` (int32, the three
sequences concatenated), ``lengths`` (int32 [3]), and per case ``<pooling>`` / ``<pooling>_fa``
(float32: [tokens, n_embd] for none, else [3, n_embd], [3, n_cls_out] for rank), and the cases of
``VARIANTS``, computed from a copy of the file with a key changed. The models are made with
scripts/make_arch_goldens.py's TinyModel (the SentencePiece test vocabulary: the tests feed token ids).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_arch_goldens import TinyModel, llama  # noqa: E402

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "embeddings"
SEQUENCES = [[1, 300, 45, 200, 511, 17, 99], [1, 260, 400, 3], [1, 128, 256, 301, 302, 77, 5, 9, 10, 44, 2]]
POOLINGS = {"none": 0, "mean": 1, "cls": 2, "last": 3, "rank": 4}


def encoder_embeddings(m: TinyModel, n_positions: int = 0) -> None:
    """Token, token-type (and, with ``n_positions``, learned position) embeddings and their LayerNorm."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-12
    m.metadata["attention.causal"] = False
    m.global_metadata["tokenizer.ggml.token_type_count"] = 2
    m.tensors["token_embd.weight"] = m.rng.normal(0, 1, (512, m.n_embd)).astype(np.float32)
    m.tensors["token_types.weight"] = m.rng.normal(0, 0.5, (2, m.n_embd)).astype(np.float32)
    if n_positions:
        m.tensors["position_embd.weight"] = m.rng.normal(0, 0.5, (n_positions, m.n_embd)).astype(np.float32)
    m.norm("token_embd_norm.weight", m.n_embd)
    m.bias("token_embd_norm.bias", m.n_embd)


def post_norms(m: TinyModel, il: int) -> None:
    for name in ("attn_output_norm", "layer_output_norm"):
        m.norm(f"blk.{il}.{name}.weight", m.n_embd)
        m.bias(f"blk.{il}.{name}.bias", m.n_embd)


def classification_head(m: TinyModel) -> None:
    """A reranker's head: cls (dense + tanh) and cls.output (one score)."""
    m.matrix("cls.weight", m.n_embd, m.n_embd)
    m.bias("cls.bias", m.n_embd)
    m.matrix("cls.output.weight", 1, m.n_embd, gain=2.0)
    m.bias("cls.output.bias", 1)


def bert(m: TinyModel) -> None:
    m.metadata["context_length"] = 64
    m.metadata["pooling_type"] = 1
    encoder_embeddings(m, n_positions=64)
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, out_bias=True)
        m.ffn(il, gated=False, biases=True)
        post_norms(m, il)
    classification_head(m)


def nomic_bert(m: TinyModel) -> None:
    """nomic-bert: rotary positions (neox, base 1000) instead of learned ones, a fused QKV and a
    SwiGLU FFN without biases."""
    m.metadata["context_length"] = 64
    m.metadata["pooling_type"] = 1
    m.metadata["rope.freq_base"] = 1000.0
    encoder_embeddings(m)
    for il in range(m.n_layer):
        m.attention(il, fused=True)
        m.ffn(il, gated=True)
        post_norms(m, il)


def jina_bert_v2(m: TinyModel) -> None:
    """jina-bert-v2: ALiBi instead of positions, LayerNorms of q and k, a second post-attention
    norm (layer 0), a GEGLU FFN with gate and up fused in ffn_up (layer 0) or a separate gate."""
    m.metadata["context_length"] = 64
    m.metadata["pooling_type"] = 1
    encoder_embeddings(m)
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, out_bias=True)
        for name in ("attn_q_norm", "attn_k_norm"):
            m.norm(f"blk.{il}.{name}.weight", m.n_embd)
            m.bias(f"blk.{il}.{name}.bias", m.n_embd)
        if il == 0:
            m.norm("blk.0.attn_norm_2.weight", m.n_embd)
            m.bias("blk.0.attn_norm_2.bias", m.n_embd)
            m.ffn(il, fused=True)
            m.bias("blk.0.ffn_up.bias", 2 * m.n_ff)
            m.bias("blk.0.ffn_down.bias", m.n_embd)
        else:
            m.ffn(il, gated=True)
            m.bias(f"blk.{il}.ffn_up.bias", m.n_ff)
            m.bias(f"blk.{il}.ffn_down.bias", m.n_embd)
        post_norms(m, il)


def modern_bert(m: TinyModel) -> None:
    """modern-bert: pre-norm LayerNorms without biases (none before layer 0's attention), rotary
    positions (neox, base 160000; 10000 in local layers), a fused QKV, a GEGLU FFN fused in ffn_up,
    layer 0 global and layers 1 and 2 local with a symmetric window of 4 (2 positions both ways)."""
    m.metadata.update({"context_length": 64, "pooling_type": 1, "attention.layer_norm_epsilon": 1e-5,
                       "attention.causal": False, "rope.freq_base": 160000.0, "rope.freq_base_swa": 10000.0,
                       "attention.sliding_window": 4, "attention.sliding_window_pattern": 3})
    m.tensors["token_embd.weight"] = m.rng.normal(0, 1, (512, m.n_embd)).astype(np.float32)
    m.norm("token_embd_norm.weight", m.n_embd)
    for il in range(m.n_layer):
        if il:
            m.norm(f"blk.{il}.attn_norm.weight", m.n_embd)
        m.attention(il, fused=True)
        m.ffn(il, fused=True)
        m.norm(f"blk.{il}.ffn_norm.weight", m.n_embd)
    m.norm("output_norm.weight", m.n_embd)
    # ModernBertForSequenceClassification's head as converted: head.dense (no bias), head.norm (no
    # bias) and the classifier; with no classifier.pooling_type key it reads each sequence's mean
    m.matrix("cls.weight", m.n_embd, m.n_embd)
    m.norm("cls.norm.weight", m.n_embd)
    m.matrix("cls.output.weight", 1, m.n_embd, gain=2.0)
    m.bias("cls.output.bias", 1)


def llama_decoder(m: TinyModel) -> None:
    """A decoder used for embeddings (GritLM, Qwen3-Embedding style): last and mean pooling."""
    llama(m)
    m.metadata["pooling_type"] = 3


#: name -> (writer, TinyModel arguments, pooling types to record)
MODELS: dict[str, tuple[Callable[[TinyModel], None], dict, tuple[str, ...]]] = {
    "bert": (bert, {"arch": "bert", "n_head_kv": 4}, ("none", "mean", "cls", "last", "rank")),
    "llama": (llama_decoder, {"arch": "llama"}, ("none", "mean", "last")),
    "nomic-bert": (nomic_bert, {"arch": "nomic-bert", "n_head_kv": 4}, ("none", "mean", "cls", "last")),
    "jina-bert-v2": (jina_bert_v2, {"arch": "jina-bert-v2", "n_head_kv": 4}, ("none", "mean", "cls", "last")),
    "modern-bert": (modern_bert, {"arch": "modern-bert", "n_layer": 3, "n_head_kv": 4},
                    ("none", "mean", "cls", "last", "rank")),
}
#: name -> {case: (metadata keys set in a copy of the model, pooling type)}
VARIANTS: dict[str, dict[str, tuple[dict, str]]] = {
    "modern-bert": {"rank_cls": ({"classifier.pooling_type": POOLINGS["cls"]}, "rank")},  # the head reads row 0
}


def llama_cpp_embeddings(path: Path, pooling: int, flash_attn: bool) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), embedding=True, pooling_type=pooling, flash_attn=flash_attn,
                          n_ctx=64, n_batch=64, n_ubatch=64, n_threads=2, verbose=False)
    llm._ctx.kv_cache_clear()
    llm._batch.reset()
    for seq_id, tokens in enumerate(SEQUENCES):
        llm._batch.add_sequence(tokens, seq_id, True)
    llm._ctx.decode(llm._batch)
    n_tokens = sum(len(s) for s in SEQUENCES)
    if pooling == 0:
        ptr = llama_cpp.llama_get_embeddings(llm._ctx.ctx)
        out = np.ctypeslib.as_array(ptr, shape=(n_tokens * llm.n_embd(),)).reshape(n_tokens, -1).copy()
    else:
        width = 1 if pooling == 4 else llm.n_embd()
        out = np.stack([np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, s), shape=(width,))
                        for s in range(len(SEQUENCES))]).copy()
    llm.close()
    return out.astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(MODELS), help="models (default: all)")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        build, shape, poolings = MODELS[name]
        shape = dict(shape)
        model = TinyModel(shape.pop("arch", name), seed=2000 + list(MODELS).index(name), **shape)
        build(model)
        path = OUT_DIR / f"{name}.gguf"
        model.write(path)
        cases = {}
        for pooling in poolings:
            for flash in (False, True):
                cases[pooling + ("_fa" if flash else "")] = llama_cpp_embeddings(path, POOLINGS[pooling], flash)
        for case, (metadata, pooling) in VARIANTS.get(name, {}).items():
            original = dict(model.metadata)
            model.metadata.update(metadata)
            with tempfile.TemporaryDirectory() as tmp:
                variant = Path(tmp) / path.name
                model.write(variant)
                model.metadata = original
                for flash in (False, True):
                    cases[case + ("_fa" if flash else "")] = llama_cpp_embeddings(variant, POOLINGS[pooling], flash)
        np.savez_compressed(OUT_DIR / f"{name}.npz", tokens=np.concatenate(SEQUENCES).astype(np.int32),
                            lengths=np.array([len(s) for s in SEQUENCES], np.int32), **cases)
        print(f"{name}: {path.stat().st_size / 1024:.0f} KiB; " +
              ", ".join(f"{k} {v.shape} std {v.std():.2f}" for k, v in cases.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
