"""The embedding and reranking routes of ``llmcore serve --embedding`` / ``--reranking``, shaped as
llama-server's: ``/v1/embeddings`` (OpenAI's), ``/embedding`` and ``/embeddings`` (llama-server's own:
``[{"index", "embedding": [[...]]}]``, every token's row with pooling none), ``/rerank`` and its
aliases (Jina's ``documents`` with ``relevance_score``, or TEI's ``texts`` answered with ``score``).

Requests take the model one at a time (each is one batch of its inputs as sequences), in a worker
thread, so the event loop keeps serving."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
from fastapi import FastAPI

from llmcore.api.llm import LLM
from llmcore.models.pooling import Pooling
from llmcore.server.errors import APIError
from llmcore.server.schemas import EmbeddingRequest, RerankRequest


def add_embedding_routes(app: FastAPI, llm: LLM, model: str) -> None:
    lock = threading.Lock()

    def locked(work):
        def run() -> Any:
            with lock:
                return work()
        return asyncio.to_thread(run)

    def inputs(body: EmbeddingRequest) -> Any:
        if llm.pooling is None:
            raise APIError(501, "This server does not support embeddings. Start it with `--embeddings`")
        value = body.input if body.input is not None else body.content
        if value is None:
            raise APIError(400, "\"input\" or \"content\" must be provided", param="input")
        if value == [] or value == "":
            raise APIError(400, "\"input\" must not be empty", param="input")
        return value

    @app.post("/v1/embeddings")
    async def embeddings_oai(body: EmbeddingRequest) -> dict[str, Any]:
        value = inputs(body)
        if body.input is None:  # llama-server answers "content" in its own shape
            return await embeddings_native(body)
        if llm.pooling is Pooling.NONE:
            raise APIError(400, "Pooling type 'none' is not OAI compatible. Please use a different pooling type")
        response = await locked(lambda: llm.create_embedding(value, model=body.model or model,
                                                            encoding_format=body.encoding_format))
        return response.model_dump()

    @app.post("/embedding")
    @app.post("/embeddings")
    async def embeddings_native(body: EmbeddingRequest) -> list[dict[str, Any]]:
        value = inputs(body)
        norm = 2 if body.embd_normalize is None else body.embd_normalize
        # as llama-server: token rows (pooling none) are not normalized, pooled rows are
        rows = await locked(lambda: llm.embed(value, normalize=-1 if llm.pooling is Pooling.NONE else norm))
        if llm.pooling is Pooling.NONE:
            return [{"index": i, "embedding": r.tolist()} for i, r in enumerate(rows)]
        return [{"index": i, "embedding": [r.tolist()]} for i, r in enumerate(np.asarray(rows))]

    @app.post("/rerank")
    @app.post("/reranking")
    @app.post("/v1/rerank")
    @app.post("/v1/reranking")
    async def rerank(body: RerankRequest) -> Any:
        if llm.pooling is not Pooling.RANK:
            raise APIError(501, "This server does not support reranking. Start it with `--reranking`")
        tei = body.texts is not None
        documents = body.texts if tei else body.documents
        if not documents:
            raise APIError(400, "\"documents\" must be a non-empty string array", param="documents")
        top_n = len(documents) if body.top_n is None else body.top_n
        pairs = [llm.rerank_tokens(body.query, d) for d in documents]
        results = await locked(lambda: llm.rerank(body.query, documents, top_n=top_n))
        if tei:
            return [{"index": r.index, "score": r.relevance_score, **({"text": documents[r.index]} if body.return_text
                                                                      else {})} for r in results]
        n_tokens = sum(map(len, pairs))
        return {"model": body.model or model, "object": "list",
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
                "results": [r.model_dump() for r in results]}

