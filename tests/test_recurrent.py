"""Recurrent models (Mamba, Mamba-2, RWKV-6, RWKV-7, ARWKV-7, RWKV-6-Qwen2) against llama.cpp: the
tiny fixtures of scripts/make_arch_goldens.py, whose goldens also hold llama.cpp's logits of the tokens decoded one
at a time (``incremental``), and the recurrent memory's sequence operations and state files.

On cpu_simd (ggml's orders in C) every logit equals llama.cpp's, in one batch and token by token;
the reference backend's float32 products are BLAS sums, within a few ulps."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from llmcore import LLM
from llmcore.api import Batch
from llmcore.errors import LLMCoreError

ARCH_DIR = Path(__file__).parent / "fixtures" / "arch"
RECURRENT = ["mamba", "mamba2", "rwkv6", "rwkv6_unfused", "rwkv7", "arwkv7", "rwkv6qwen2"]
REFERENCE_ERROR = 1e-4  # absolute, on logits of std ~4


def _gold(arch: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    gold = np.load(ARCH_DIR / f"{arch}.logits.npz")
    return gold["tokens"].tolist(), gold["logits"], gold["incremental"]


def _check(logits: np.ndarray, expected: np.ndarray, backend: str) -> None:
    if backend == "cpu_simd":
        np.testing.assert_array_equal(logits, expected)
    else:
        assert np.abs(logits - expected).max() < REFERENCE_ERROR


@pytest.mark.parametrize("backend", ["reference", "cpu_simd"])
@pytest.mark.parametrize("arch", RECURRENT)
def test_batch_and_token_by_token_match_llama_cpp(arch, backend):
    """The conv and scan continue from each step's state: one token at a time gives llama.cpp's
    one-token logits, as the whole prompt in one batch gives its batch logits."""
    tokens, batch, incremental = _gold(arch)
    llm = LLM(ARCH_DIR / f"{arch}.gguf", backend=backend, n_ctx=64)
    _check(llm.logits(tokens), batch, backend)
    llm.reset()
    _check(np.array([llm.eval_prompt(tokens[: i + 1]) for i in range(len(tokens))]), incremental, backend)


@pytest.mark.parametrize("arch", ["mamba", "rwkv7"])
def test_sequences_share_a_batch_and_copy_states(arch):
    """Two sequences interleaved in one batch each compute what they compute alone; a copied
    state goes on as the original would; a tail cannot be removed, a whole sequence can."""
    tokens, batch, _ = _gold(arch)
    llm = LLM(ARCH_DIR / f"{arch}.gguf", backend="cpu_simd", n_ctx=64, n_seq_max=3)
    ctx = llm.context
    other = tokens[5:]
    solo_other = ctx.decode(Batch.for_sequence(other, 0, seq_id=2, all_logits=True))
    ctx.seq_remove(2)
    order = [(seq, i) for i in range(len(tokens)) for seq in (0, 2) if i < len(other) or seq == 0]
    mixed = Batch(np.array([(tokens if s == 0 else other)[i] for s, i in order]), np.array([i for _, i in order]),
                  np.array([s for s, _ in order]), np.ones(len(order), bool))
    logits = ctx.decode(mixed)
    seqs = mixed.seq_ids
    np.testing.assert_array_equal(logits[seqs == 0], batch)
    np.testing.assert_array_equal(logits[seqs == 2], solo_other)

    ctx.seq_remove(0)
    ctx.decode(Batch.for_sequence(tokens[:8], 0, seq_id=0))
    ctx.seq_copy(0, 1)
    np.testing.assert_array_equal(ctx.decode(Batch.for_sequence(tokens[8:], 8, seq_id=1, all_logits=True)), batch[8:])
    assert ctx.seq_pos_max(0) == 7 and ctx.seq_pos_max(1) == 15
    assert not ctx.seq_remove(1, 4) and ctx.seq_pos_max(1) == 15  # a state cannot forget its last tokens
    assert ctx.seq_remove(1, 16) and ctx.seq_remove(1, 0) and ctx.seq_pos_max(1) == -1
    with pytest.raises(LLMCoreError, match="must go on one after another from 8"):
        ctx.decode(Batch.for_sequence(tokens[:2], 5, seq_id=0))
    with pytest.raises(LLMCoreError, match="n_seq_max=3"):
        ctx.decode(Batch.for_sequence(tokens[:2], 0, seq_id=3))
    with pytest.raises(LLMCoreError, match=f"context shift is not supported by {arch}"):
        ctx.seq_shift_out(0, 1, 2)


def test_a_changed_prompt_starts_the_state_over():
    """eval_prompt reuses the state when the new prompt extends the old one and starts over when
    it does not (the state holds no earlier positions to go back to)."""
    tokens, batch, _ = _gold("mamba2")
    llm = LLM(ARCH_DIR / "mamba2.gguf", backend="cpu_simd", n_ctx=64)
    fresh = LLM(ARCH_DIR / "mamba2.gguf", backend="cpu_simd", n_ctx=64)
    llm.eval_prompt(tokens[:12])
    assert np.abs(llm.eval_prompt(tokens[:6]) - batch[5]).max() < REFERENCE_ERROR  # one output row: ggml's vec_dot
    fresh.eval_prompt(tokens[:6])
    np.testing.assert_array_equal(llm.eval_prompt(tokens[:7]), fresh.eval_prompt(tokens[:7]))


def test_state_file_round_trip(tmp_path):
    """save_state writes sequence 0's state after its tokens; a fresh context loads it and goes on
    with llama.cpp's logits; a state that has read other tokens is refused."""
    tokens, batch, _ = _gold("mamba")
    llm = LLM(ARCH_DIR / "mamba.gguf", backend="cpu_simd", n_ctx=64)
    llm.eval_prompt(tokens[:10])
    llm.save_state(tmp_path / "state.bin")
    with pytest.raises(LLMCoreError, match="has read 10 tokens, not 4"):
        llm.save_state(tmp_path / "short.bin", n_tokens=4)

    fresh = LLM(ARCH_DIR / "mamba.gguf", backend="cpu_simd", n_ctx=64)
    assert fresh.load_state(tmp_path / "state.bin") == tokens[:10]
    logits = fresh.context.decode(Batch.for_sequence(tokens[10:], 10, all_logits=True))
    np.testing.assert_array_equal(logits, batch[10:])


def test_memory_line_names_the_states():
    llm = LLM(ARCH_DIR / "mamba2.gguf", backend="reference", n_ctx=64, n_seq_max=2)
    line = llm.context.kv_cache_line()
    assert "(     2 cells,   2 layers,  2 seqs), R (f32):" in line and "S (f32):    0.16 MiB" in line


def test_server_slots_keep_a_state_each():
    """``llmcore serve``'s slots on a recurrent model: two requests decoded together give their solo
    greedy completions, and a prompt that shares only a prefix with a slot's tokens starts over."""
    starlette = pytest.importorskip("starlette.testclient")
    from llmcore.server import create_app

    path = ARCH_DIR / "mamba.gguf"
    prompts = ["Hello there", "The cat", "Hello there you"]
    solo = LLM(path, backend="cpu_simd", n_ctx=128)
    want = [solo.create_completion(p, max_tokens=6, temperature=0).choices[0].text for p in prompts]
    app = create_app(LLM(path, backend="cpu_simd", n_ctx=128, n_seq_max=2), n_parallel=2)
    got: dict[int, str] = {}
    with starlette.TestClient(app) as client:
        def complete(i: int) -> None:
            reply = client.post("/v1/completions", json={"prompt": prompts[i], "max_tokens": 6, "temperature": 0})
            got[i] = reply.json()["choices"][0]["text"]

        threads = [threading.Thread(target=complete, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        complete(2)
    assert [got[i] for i in range(3)] == want
