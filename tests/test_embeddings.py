"""Embeddings against llama.cpp 0.3.36: tiny random-weight models (tests/fixtures/embeddings, made by
scripts/make_embedding_goldens.py) whose embeddings llama.cpp computed for a batch of three
sequences, with every pooling type and flash attention off and on; and the host-side pieces
(micro-batches of whole sequences, pooled rows, normalizations) against llama.cpp's rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from llmcore.engine import embeddings
from llmcore.engine.batch import Batch
from llmcore.engine.context import Context
from llmcore.engine.model import Model
from llmcore.engine.plan import Plan
from llmcore.errors import LLMCoreError, ModelError
from llmcore.models.base import HParams
from llmcore.models.pooling import Pooling

FIXTURES = Path(__file__).parent / "fixtures" / "embeddings"
# Relative to the embeddings' standard deviation (about 1). The reference backend's float products
# sum in BLAS order, not ggml's, which leaves ~2e-6. Flash attention rounds keys, values and queries
# to f16, where those differences flip an f16 value now and then: up to ~1e-3.
MAX_ERROR = {False: 2e-5, True: 2e-3}
# The GEGLU models on reference: those ~1e-6 differences move an activation across an f16 boundary
# of ggml's GELU table now and then, which moves it by a whole f16 step (the output by up to ~2e-4)
REFERENCE_GELU_FLIP_ERROR = {"jina-bert-v2": 3e-4, "modern-bert": 5e-5}
# cpu_simd computes the hidden states in ggml's orders: equal bit for bit (the mean and the rank head
# are taken apart from ggml's graph and differ by rounding)
EXACT_ON_CPU_SIMD = ("none", "cls", "last")
# cases llama.cpp computed from a copy of the fixture with a key changed (make_embedding_goldens.py's
# VARIANTS): case -> the hyper-parameter that key sets, and the pooling
VARIANTS = {"rank_cls": ({"classifier_pooling": Pooling.CLS}, Pooling.RANK)}


def _golden_batch(gold) -> Batch:
    lengths = gold["lengths"]
    return Batch(gold["tokens"], np.concatenate([np.arange(n) for n in lengths]),
                 np.repeat(np.arange(len(lengths)), lengths), np.ones(int(lengths.sum()), bool))


def _cases(name: str) -> list[str]:
    return [case for case in np.load(FIXTURES / f"{name}.npz").files if case not in ("tokens", "lengths")]


@pytest.mark.parametrize("backend", ["reference", "cpu_simd"])
@pytest.mark.parametrize("name", ["bert", "llama", "nomic-bert", "jina-bert-v2", "modern-bert"])
def test_embeddings_match_llama_cpp(name, backend):
    gold = np.load(FIXTURES / f"{name}.npz")
    model = Model(FIXTURES / f"{name}.gguf")
    batch = _golden_batch(gold)
    hparams = model.hparams
    for case in _cases(name):
        base, flash = case.removesuffix("_fa"), case.endswith("_fa")
        changed, pooling = VARIANTS[base] if base in VARIANTS else ({}, Pooling.parse(base))
        model.hparams = dataclasses.replace(hparams, **changed)
        plan = Plan.build(model, backend, n_ctx=64, n_batch=64, flash_attn="on" if flash else "off")
        out = Context(model, plan.placement, 64, 64, plan.cache, pooling).embeddings(batch)
        expected = gold[case]
        assert out.shape == expected.shape, case
        error = float(np.abs(out - expected).max())
        print(f"{name} {case} on {backend}: max abs error {error:.1e}")
        if backend == "cpu_simd" and base in EXACT_ON_CPU_SIMD:
            np.testing.assert_array_equal(out, expected, err_msg=case)
            continue
        bound = MAX_ERROR[flash]
        if backend == "reference" and not flash:
            bound = REFERENCE_GELU_FLIP_ERROR.get(name, bound)
        assert error < bound * max(float(expected.std()), 1.0), case
    model.close()


def test_classification_head_reading_is_the_files():
    """ModernBERT's head reads means unless {arch}.classifier.pooling_type says otherwise; a model
    without a head cannot rank."""
    model = Model(FIXTURES / "modern-bert.gguf")
    assert model.hparams.classifier_pooling is None
    meta = {**model.metadata, "modern-bert.classifier.pooling_type": 2}
    assert HParams.from_metadata(meta, model.hparams.n_vocab).classifier_pooling is Pooling.CLS
    with pytest.raises(ModelError, match="classifier.pooling_type"):
        HParams.from_metadata({**meta, "modern-bert.classifier.pooling_type": 9}, model.hparams.n_vocab)
    model.close()
    model = Model(FIXTURES / "nomic-bert.gguf")
    plan = Plan.build(model, "reference", n_ctx=64, n_batch=64)
    with pytest.raises(ModelError, match="rank pooling needs a classification head"):
        Context(model, plan.placement, 64, 64, plan.cache, Pooling.RANK)
    model.close()


def test_encoder_sequences_are_independent():
    """Non-causal attention sees the whole sequence and nothing of the others: each sequence alone
    gives what it gives in the batch (flash attention off: no f16 roundings to flip)."""
    gold = np.load(FIXTURES / "bert.npz")
    model = Model(FIXTURES / "bert.gguf")
    plan = Plan.build(model, "cpu_simd", n_ctx=64, n_batch=64, flash_attn="off")
    context = Context(model, plan.placement, 64, 64, plan.cache, Pooling.CLS)
    starts = np.concatenate([[0], np.cumsum(gold["lengths"])])
    for i, (start, stop) in enumerate(zip(starts, starts[1:])):
        alone = context.embeddings(Batch.for_sequence(gold["tokens"][start:stop].tolist(), 0, all_logits=True))
        assert np.abs(alone[0] - gold["cls"][i]).max() < MAX_ERROR[False]
    with pytest.raises(LLMCoreError, match="computes embeddings, not logits"):
        context.decode(Batch.for_sequence([1, 2], 0))
    model.close()


def test_micro_batches_hold_whole_sequences():
    batch = Batch(np.arange(10), np.array([0, 1, 2, 0, 1, 0, 1, 2, 3, 4]), np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2]),
                  np.ones(10, bool))
    assert [b.seq_ids.tolist() for b in embeddings.micro_batches(batch, 5)] == [[0, 0, 0, 1, 1], [2] * 5]
    assert [len(b) for b in embeddings.micro_batches(batch, 10)] == [10]
    with pytest.raises(LLMCoreError, match="an input of 5 tokens exceeds the batch size 4"):
        embeddings.micro_batches(batch, 4)
    split = Batch(np.arange(3), np.arange(3), np.array([0, 1, 0]), np.ones(3, bool))
    with pytest.raises(LLMCoreError, match="not consecutive"):
        embeddings.micro_batches(split, 8)


def test_pool_rows_follow_llama_cpp():
    """cls takes each sequence's lowest position, last (and rank in a causal model) its highest."""
    batch = Batch(np.arange(5), np.array([3, 1, 2, 0, 5]), np.array([4, 4, 4, 2, 2]), np.ones(5, bool))
    assert embeddings.sequences(batch).tolist() == [4, 2]
    assert embeddings.pool_rows(batch, Pooling.CLS, causal=False).tolist() == [1, 3]
    assert embeddings.pool_rows(batch, Pooling.LAST, causal=False).tolist() == [0, 4]
    assert embeddings.pool_rows(batch, Pooling.RANK, causal=False).tolist() == [1, 3]
    assert embeddings.pool_rows(batch, Pooling.RANK, causal=True).tolist() == [0, 4]


def test_normalize_as_common_embd_normalize():
    x = np.array([[3.0, -4.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(embeddings.normalize(x, -1), x)
    np.testing.assert_allclose(embeddings.normalize(x, 0)[0], [3 * 32760 / 4, -32760, 0])
    np.testing.assert_allclose(embeddings.normalize(x, 1)[0], [3 / 7, -4 / 7, 0], rtol=1e-6)
    np.testing.assert_allclose(embeddings.normalize(x, 2)[0], [0.6, -0.8, 0], rtol=1e-6)
    p3 = (27 + 64) ** (1 / 3)
    np.testing.assert_allclose(embeddings.normalize(x, 3)[0], [3 / p3, -4 / p3, 0], rtol=1e-6)
    assert not embeddings.normalize(x, 2)[1].any()
    with pytest.raises(LLMCoreError, match="--embd-normalize -2"):
        embeddings.normalize(x, -2)
    assert embeddings.cosine([1, 0], [1, 0]) == 1.0 and embeddings.cosine([0, 0], [1, 0]) == 0.0


def test_pooling_names():
    assert Pooling.parse("mean") is Pooling.MEAN and Pooling.parse("4") is Pooling.RANK and Pooling.parse(2) is Pooling.CLS
    with pytest.raises(Exception, match="unknown pooling type 'avg'"):
        Pooling.parse("avg")


def test_llm_embed_batches_inputs_as_sequences():
    """LLM.embed packs token-id inputs into one batch of sequences: the file's mean pooling, the
    same rows as llama.cpp's; normalized by default, raw with normalize=-1."""
    from llmcore import LLM

    gold = np.load(FIXTURES / "bert.npz")
    llm = LLM(FIXTURES / "bert.gguf", backend="cpu_simd")
    starts = np.concatenate([[0], np.cumsum(gold["lengths"])])
    inputs = [gold["tokens"][a:b].tolist() for a, b in zip(starts, starts[1:])]
    raw = llm.embed(inputs, normalize=-1)
    assert raw.shape == gold["mean"].shape and np.abs(raw - gold["mean"]).max() < MAX_ERROR[False]
    np.testing.assert_allclose(np.linalg.norm(llm.embed(inputs), axis=1), 1.0, rtol=1e-6)
    assert llm.embed(inputs[1], normalize=-1).shape == (1, 64)

    response = llm.create_embedding(inputs, encoding_format="base64")
    floats = llm.create_embedding(inputs)
    assert response.usage.prompt_tokens == int(gold["lengths"].sum()) and len(response.data) == 3
    import base64
    decoded = np.frombuffer(base64.b64decode(response.data[2].embedding), "<f4")
    np.testing.assert_array_equal(decoded, np.array(floats.data[2].embedding, np.float32))
    with pytest.raises(LLMCoreError, match="reranking needs rank pooling"):
        llm.rerank("query", ["document"])
    with pytest.raises(LLMCoreError, match="token id 512 is outside the vocabulary"):
        llm.embed([[1, 512]])


def test_llm_rerank_scores_pairs_best_first():
    from llmcore import LLM

    llm = LLM(FIXTURES / "bert.gguf", backend="cpu_simd", pooling="rank")
    documents = ["a cat", "the weather today", "cats and dogs", "x"]
    results = llm.rerank("cat", documents, top_n=3)
    pairs = [llm.rerank_tokens("cat", d) for d in documents]
    assert pairs[0][0] == llm.tokenizer.bos_id  # BOS query document: what this vocabulary adds
    scores = llm.embed(pairs, normalize=-1)[:, 0]
    assert [r.index for r in results] == list(np.argsort(-scores)[:3])
    np.testing.assert_allclose([r.relevance_score for r in results], np.sort(scores)[::-1][:3], rtol=1e-6)


def test_generation_model_refuses_embeddings_until_asked():
    from llmcore import LLM

    llm = LLM(FIXTURES / "llama.gguf", backend="cpu_simd", n_ctx=64)
    with pytest.raises(LLMCoreError, match="loaded for text generation"):
        llm.embed("hello")
    gold = np.load(FIXTURES / "llama.npz")
    embedder = LLM(FIXTURES / "llama.gguf", backend="cpu_simd", n_ctx=64, embedding=True)  # the file's last pooling
    first = gold["tokens"][: gold["lengths"][0]].tolist()
    assert np.abs(embedder.embed(first, normalize=-1)[0] - gold["last"][0]).max() < MAX_ERROR[False]


def test_embedding_command_output_formats(capsys):
    """llmcore embedding prints as llama-embedding: json (OpenAI's list), array, and the default
    lines with a cosine similarity matrix."""
    import json

    from llmcore import LLM
    from llmcore.cli import main

    texts = "hello world\nthe cat sat"
    base = ["embedding", "-m", str(FIXTURES / "bert.gguf"), "--backend", "cpu_simd", "-fa", "off", "-p", texts]
    assert main([*base, "--embd-output-format", "json+"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = LLM(FIXTURES / "bert.gguf", backend="cpu_simd", flash_attn="off").embed(texts.split("\n"))
    got = np.array([d["embedding"] for d in printed["data"]])
    assert np.abs(got - expected).max() < 1e-6 and printed["cosineSimilarity"][0][0] == 1.0
    assert main([*base, "--embd-output-format", "array", "--embd-normalize", "-1", "--pooling", "cls"]) == 0
    assert np.array(json.loads(capsys.readouterr().out)).shape == (2, 64)
    assert main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("embedding 0: ") and "cosine similarity matrix:" in lines
    with pytest.raises(SystemExit) as refused:
        main([*base, "--pooling", "avg"])
    assert refused.value.code == 2
