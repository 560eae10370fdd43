"""``llmcore serve --embedding`` / ``--reranking`` on a loopback port, answered as llama-server
answers: the official ``openai`` client's ``embeddings.create`` (floats and base64, texts and token
ids), llama-server's ``/embedding`` and ``/rerank`` shapes, and its refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from test_server import ServerProcess

FIXTURES = Path(__file__).parent / "fixtures" / "embeddings"


@pytest.fixture(scope="module")
def embedding_server():
    proc = ServerProcess(FIXTURES / "bert.gguf", "--embedding", "--backend", "cpu_simd", "-fa", "off")
    yield proc
    proc.stop()


def test_openai_client_embeddings(embedding_server):
    gold = np.load(FIXTURES / "bert.npz")
    starts = np.concatenate([[0], np.cumsum(gold["lengths"])])
    inputs = [gold["tokens"][a:b].tolist() for a, b in zip(starts, starts[1:])]
    client = openai.OpenAI(base_url=f"{embedding_server.url}/v1", api_key="unused", max_retries=0, timeout=60)

    response = client.embeddings.create(model="bert", input=inputs, encoding_format="float")
    expected = gold["mean"] / np.linalg.norm(gold["mean"], axis=1, keepdims=True)  # the file's pooling, L2-normalized
    got = np.array([d.embedding for d in response.data], np.float32)
    assert [d.index for d in response.data] == [0, 1, 2] and response.model == "bert"
    assert np.abs(got - expected).max() < 1e-4
    assert response.usage.prompt_tokens == int(gold["lengths"].sum())

    # the client asks for base64 by default and decodes it to floats
    decoded = client.embeddings.create(model="bert", input=inputs)
    np.testing.assert_allclose(np.array([d.embedding for d in decoded.data]), got, rtol=0, atol=1e-7)
    single = client.embeddings.create(model="bert", input=inputs[1], encoding_format="float")
    np.testing.assert_allclose(single.data[0].embedding, got[1], atol=1e-6)
    assert len(client.embeddings.create(model="bert", input=["a text", "another"]).data) == 2


def test_native_routes_and_refusals(embedding_server):
    url = embedding_server.url
    native = httpx.post(f"{url}/embedding", json={"content": "hello there"}, timeout=60).json()
    assert native[0]["index"] == 0 and len(native[0]["embedding"]) == 1 and len(native[0]["embedding"][0]) == 64
    assert abs(np.linalg.norm(native[0]["embedding"][0]) - 1) < 1e-5
    raw = httpx.post(f"{url}/embeddings", json={"content": "hello there", "embd_normalize": -1}, timeout=60).json()
    assert abs(np.linalg.norm(raw[0]["embedding"][0]) - 1) > 1e-3

    completion = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=60)
    assert completion.status_code == 501 and "--embeddings" in completion.json()["error"]["message"]
    rerank = httpx.post(f"{url}/rerank", json={"query": "q", "documents": ["d"]}, timeout=60)
    assert rerank.status_code == 501 and "--reranking" in rerank.json()["error"]["message"]
    empty = httpx.post(f"{url}/v1/embeddings", json={"input": []}, timeout=60)
    assert empty.status_code == 400
    bad = httpx.post(f"{url}/v1/embeddings", json={"input": "x", "encoding_format": "hex"}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "encoding_format"


def test_rerank_routes():
    proc = ServerProcess(FIXTURES / "bert.gguf", "--reranking", "--backend", "cpu_simd", "-fa", "off")
    try:
        documents = ["a cat", "the weather today", "cats and dogs"]
        jina = httpx.post(f"{proc.url}/v1/rerank", json={"query": "cat", "documents": documents, "top_n": 2},
                          timeout=60).json()
        scores = [r["relevance_score"] for r in jina["results"]]
        assert len(scores) == 2 and scores == sorted(scores, reverse=True) and jina["object"] == "list"
        tei = httpx.post(f"{proc.url}/rerank", json={"query": "cat", "texts": documents, "return_text": True},
                         timeout=60).json()
        assert {r["index"] for r in tei} == {0, 1, 2} and tei[0]["score"] == scores[0]
        assert tei[0]["text"] == documents[tei[0]["index"]]
    finally:
        proc.stop()


def test_concurrent_requests_share_a_batch():
    """Requests that arrive while the model is busy are embedded together, in one list of
    sequences, each answered with its own rows: what each would get alone (within the rounding of
    sitting elsewhere in the batch), and an invalid request fails alone."""
    import threading
    import time

    from starlette.testclient import TestClient

    from llmcore import LLM
    from llmcore.server import create_app

    llm = LLM(FIXTURES / "bert.gguf", backend="cpu_simd", embedding=True, flash_attn="off")
    texts = ["the first request", "a second one, a little longer than the first", "third", "and a fourth text"]
    solo = [llm.create_embedding(text).data[0].embedding for text in texts]
    calls: list[int] = []
    gate = threading.Event()
    embed = llm.embed_token_lists

    def gated(inputs):
        calls.append(len(inputs))
        if len(calls) == 1:
            assert gate.wait(30)  # the first request holds the model while the others arrive
        return embed(inputs)

    llm.embed_token_lists = gated
    app = create_app(llm)
    got: dict[int, object] = {}
    with TestClient(app) as client:
        def post(i: int, body: dict) -> None:
            got[i] = client.post("/v1/embeddings", json=body)

        first = threading.Thread(target=post, args=(0, {"input": texts[0], "encoding_format": "float"}))
        first.start()
        while not calls:
            time.sleep(0.01)
        others = [threading.Thread(target=post, args=(i, {"input": texts[i], "encoding_format": "float"}))
                  for i in (1, 2, 3)]
        others.append(threading.Thread(target=post, args=(4, {"input": [[10**6]]})))  # outside the vocabulary
        for thread in others:
            thread.start()
        inbox = app.state.embedding_batcher._inbox
        deadline = time.monotonic() + 30
        while inbox.qsize() < 3 and time.monotonic() < deadline:  # the invalid one is refused before queuing
            time.sleep(0.01)
        gate.set()
        for thread in [first, *others]:
            thread.join()
    assert calls == [1, 3]
    for i in range(4):
        np.testing.assert_allclose(got[i].json()["data"][0]["embedding"], solo[i], rtol=0, atol=1e-6)
    assert got[4].status_code == 400
