"""The embedding and reranking routes of ``llmcore serve --embedding`` / ``--reranking``, shaped as
llama-server's: ``/v1/embeddings`` (OpenAI's), ``/embedding`` and ``/embeddings`` (llama-server's own:
``[{"index", "embedding": [[...]]}]``, every token's row with pooling none), ``/rerank`` and its
aliases (Jina's ``documents`` with ``relevance_score``, or TEI's ``texts`` answered with ``score``).

Requests in flight share the model's batches: a worker thread takes every request waiting when it
is free and embeds all their inputs together, a sequence each (see ``EmbeddingBatcher``); the event
loop keeps serving meanwhile."""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import numpy as np
from fastapi import FastAPI

from llmcore.api.llm import LLM
from llmcore.errors import LLMCoreError
from llmcore.models.pooling import Pooling
from llmcore.server.errors import APIError
from llmcore.server.schemas import EmbeddingRequest, RerankRequest


class EmbeddingBatcher:
    """Embeds the token lists of concurrent requests in shared batches: each request's inputs join
    the list of every request waiting when the worker is free, and each gets its own inputs' arrays
    back (as ``LLM.embed_token_lists`` gives them). Should the shared list fail (an input longer than
    the batch), each request runs again alone, so that only the bad one fails."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    async def embed(self, inputs: list[list[int]]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_worker()
        self._inbox.put((inputs, future, loop))
        return await future

    def _ensure_worker(self) -> None:
        with self._start:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="llmcore-embeddings", daemon=True)
                self._worker.start()

    def _serve(self) -> None:
        while True:
            waiting = [self._inbox.get()]
            while not self._inbox.empty():
                waiting.append(self._inbox.get())
            try:
                rows = self.llm.embed_token_lists([tokens for inputs, _, _ in waiting for tokens in inputs])
            except LLMCoreError as exc:
                for request in waiting:
                    self._alone(request, exc if len(waiting) == 1 else None)
                continue
            start = 0
            for inputs, future, loop in waiting:
                loop.call_soon_threadsafe(_settle, future, rows[start:start + len(inputs)], None)
                start += len(inputs)

    def _alone(self, request: tuple, error: LLMCoreError | None) -> None:
        """Answer one request by itself: its ``error`` where it already failed alone, else its arrays
        or the error it fails with."""
        inputs, future, loop = request
        rows = None
        if error is None:
            try:
                rows = self.llm.embed_token_lists(inputs)
            except LLMCoreError as exc:
                error = exc
        loop.call_soon_threadsafe(_settle, future, rows, error)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def add_embedding_routes(app: FastAPI, llm: LLM, model: str) -> None:
    batcher = app.state.embedding_batcher = EmbeddingBatcher(llm)

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
        tokens = llm.embedding_tokens(value)
        rows = await batcher.embed(tokens)
        return llm.embedding_response(tokens, rows, model=body.model or model,
                                      encoding_format=body.encoding_format).model_dump()

    @app.post("/embedding")
    @app.post("/embeddings")
    async def embeddings_native(body: EmbeddingRequest) -> list[dict[str, Any]]:
        value = inputs(body)
        norm = 2 if body.embd_normalize is None else body.embd_normalize
        # as llama-server: token rows (pooling none) are not normalized, pooled rows are
        rows = llm.embedding_rows(await batcher.embed(llm.embedding_tokens(value)),
                                  normalize=-1 if llm.pooling is Pooling.NONE else norm)
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
        results = llm.rerank_results(await batcher.embed(pairs), top_n)
        if tei:
            return [{"index": r.index, "score": r.relevance_score, **({"text": documents[r.index]} if body.return_text
                                                                      else {})} for r in results]
        n_tokens = sum(map(len, pairs))
        return {"model": body.model or model, "object": "list",
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
                "results": [r.model_dump() for r in results]}

