"""``LLM``'s embedding and reranking methods: llama-cpp-python's ``embed`` and ``create_embedding``,
llama-server's rerank. Many inputs go into one batch, a sequence id each, which the context
decodes in micro-batches of whole sequences."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from llmcore.api.types import CreateEmbeddingResponse, Embedding, EmbeddingUsage, RerankResult
from llmcore.engine import embeddings
from llmcore.engine.batch import Batch
from llmcore.engine.kv_cache import MAX_SEQUENCES
from llmcore.errors import LLMCoreError
from llmcore.models import Architecture, HParams
from llmcore.models.pooling import Pooling

if TYPE_CHECKING:
    from pathlib import Path

    from llmcore.engine.context import Context
    from llmcore.engine.model import Model
    from llmcore.tokenizer import Tokenizer

#: what ``embed`` takes: a text, texts, one input's token ids, or several inputs' token ids
EmbeddingInput = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]


def context_pooling(architecture: type[Architecture], hparams: HParams, embedding: bool,
                    pooling: str | int | Pooling | None) -> Pooling | None:
    """The pooling of a context (None: it gives logits), as llama.cpp decides it: an embedding
    context (``embedding``, or any context of an encoder) pools as ``pooling`` says, else as the
    model's ``pooling_type``, else not at all (``none``)."""
    if not (embedding or architecture.encoder_only):
        if pooling is not None:
            raise LLMCoreError("a pooling type applies to embeddings: pass embedding=True (--embedding) as well")
        return None
    if pooling is not None:
        return Pooling.parse(pooling)
    return hparams.pooling if hparams.pooling is not None else Pooling.NONE


class EmbeddingMethods:
    """Mixed into ``LLM``: what it needs are ``context``, ``model``, ``tokenizer`` and ``model_path``."""

    context: Context
    model: Model
    tokenizer: Tokenizer
    model_path: Path

    @property
    def pooling(self) -> Pooling | None:
        """How embeddings are pooled (None: this LLM computes logits, not embeddings)."""
        return self.context.pooling

    def embed(self, input: EmbeddingInput, normalize: int = 2) -> np.ndarray | list[np.ndarray]:
        """Embeddings of ``input`` (a text, a list of texts, token ids, or a list of token id
        lists): float32 [inputs, n_embd], a row per input, or with pooling ``none`` a list of
        [tokens, n_embd] arrays; ``rank`` gives [inputs, n_cls_out] scores. Each row is scaled as
        ``normalize`` says (llama.cpp's ``--embd-normalize``: 2 euclidean, the default; -1 none;
        0 max-abs int16; 1 taxicab; p > 2 p-norm). Texts are tokenized with the special tokens the
        model adds (BOS/CLS, EOS/SEP)."""
        return self.embedding_rows(self.embed_token_lists(self.embedding_tokens(input)), normalize)

    def embedding_rows(self, rows: list[np.ndarray], normalize: int = 2) -> np.ndarray | list[np.ndarray]:
        """What ``embed`` returns for the arrays ``embed_token_lists`` gave."""
        rows = [embeddings.normalize(r, normalize) for r in rows]
        return rows if self._pooling_required() is Pooling.NONE else np.concatenate(rows)

    def create_embedding(self, input: EmbeddingInput, model: str | None = None,
                         encoding_format: Literal["float", "base64"] = "float") -> CreateEmbeddingResponse:
        """OpenAI's ``embeddings.create`` (llama-server's ``/v1/embeddings``): each input's pooled,
        euclidean-normalized embedding, as floats or, with ``encoding_format="base64"``, the base64
        of its little-endian float32 bytes."""
        if self._pooling_required() is Pooling.NONE:
            raise LLMCoreError("pooling type 'none' is not OpenAI compatible: use another pooling type")
        inputs = self.embedding_tokens(input)
        return self.embedding_response(inputs, self.embed_token_lists(inputs), model, encoding_format)

    def embedding_response(self, inputs: list[list[int]], rows: list[np.ndarray], model: str | None = None,
                           encoding_format: Literal["float", "base64"] = "float") -> CreateEmbeddingResponse:
        """``create_embedding``'s answer for ``inputs`` and the arrays ``embed_token_lists`` gave."""
        vectors = embeddings.normalize(np.concatenate(rows), 2)
        data = [Embedding(index=i, embedding=_encoded(v, encoding_format)) for i, v in enumerate(vectors)]
        n_tokens = sum(len(tokens) for tokens in inputs)
        return CreateEmbeddingResponse(data=data, model=model or self.model_path.name,
                                       usage=EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens))

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """Score each document's relevance to ``query`` with a reranker (a model with a
        classification head, ``rank`` pooling), best first, the ``top_n`` best (default: all). Each
        pair is the model's ``tokenizer.chat_template.rerank`` with ``{query}`` and ``{document}``
        filled in, or else BOS query EOS SEP document EOS as the vocabulary adds them, as llama-server."""
        if self._pooling_required() is not Pooling.RANK:
            raise LLMCoreError("reranking needs rank pooling: load a reranker with embedding=True, pooling='rank'")
        if not documents:
            raise LLMCoreError("rerank: 'documents' must be a non-empty list of strings")
        return self.rerank_results(self.embed_token_lists([self.rerank_tokens(query, d) for d in documents]), top_n)

    @staticmethod
    def rerank_results(rows: list[np.ndarray], top_n: int | None = None) -> list[RerankResult]:
        """``rerank``'s answer for the pairs' arrays ``embed_token_lists`` gave: best first."""
        scores = np.concatenate(rows)[:, 0]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [RerankResult(index=i, relevance_score=float(scores[i])) for i in order[:top_n]]

    def rerank_tokens(self, query: str, document: str) -> list[int]:
        """The tokens of one (query, document) pair, as llama-server's ``format_prompt_rerank``."""
        template = self.model.metadata.get("tokenizer.chat_template.rerank")
        if isinstance(template, str):
            text = template.replace("{query}", query).replace("{document}", document)
            return self.tokenizer.tokenize(text, add_special=False, parse_special=True)
        vocab = self.tokenizer.vocab
        eos = vocab.eos_id if vocab.eos_id is not None else vocab.sep_id
        tokens = [vocab.bos_id] if vocab.add_bos else []
        tokens += self.tokenizer.tokenize(query, add_special=False)
        tokens += [eos] if vocab.add_eos else []
        tokens += [vocab.sep_id] if vocab.add_sep else []
        tokens += self.tokenizer.tokenize(document, add_special=False)
        tokens += [eos] if vocab.add_eos else []
        if any(t is None for t in tokens):
            raise LLMCoreError("rerank: the vocabulary lacks the BOS, EOS or SEP token it asks for")
        return tokens

    # -- the batch ------------------------------------------------------------------------------

    def _pooling_required(self) -> Pooling:
        if self.context.pooling is None:
            raise LLMCoreError("this model was loaded for text generation: load it with embedding=True (--embedding)")
        return self.context.pooling

    def embedding_tokens(self, input: EmbeddingInput) -> list[list[int]]:
        """The token ids of each input of ``embed`` (texts tokenized with the model's special tokens),
        checked: non-empty and inside the vocabulary."""
        if isinstance(input, str):
            input = [input]
        items = list(input)
        if items and all(isinstance(t, (int, np.integer)) for t in items):
            items = [items]
        inputs = [self.tokenizer.tokenize(item, add_special=True, parse_special=True) if isinstance(item, str)
                  else [int(t) for t in item] for item in items]
        if not inputs or any(not tokens for tokens in inputs):
            raise LLMCoreError("embedding input must be non-empty (a text, texts, or token id lists)")
        n_vocab = self.model.hparams.n_vocab
        for tokens in inputs:
            bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
            if bad is not None:
                raise LLMCoreError(f"token id {bad} is outside the vocabulary (0..{n_vocab - 1})")
        return inputs

    def embed_token_lists(self, inputs: list[list[int]]) -> list[np.ndarray]:
        """One embedding array per input, not normalized: [1, width] pooled, [tokens, width] with
        pooling none. The inputs share batches of up to ``n_batch`` tokens, a sequence each."""
        pooling = self._pooling_required()
        out: list[np.ndarray] = []
        for group in _groups(inputs, self.context.n_batch):
            batch = Batch(np.concatenate(group), np.concatenate([np.arange(len(t)) for t in group]),
                          np.repeat(np.arange(len(group)), [len(t) for t in group]),
                          np.ones(sum(len(t) for t in group), bool))
            self.context.seq_remove()  # llama-embedding's llama_memory_clear before each batch
            rows = self.context.embeddings(batch)
            self.context.seq_remove()
            if pooling is Pooling.NONE:
                bounds = np.cumsum([0, *(len(t) for t in group)])
                out += [rows[a:b] for a, b in zip(bounds, bounds[1:])]
            else:
                out += [row[None] for row in rows]
        return out


def _groups(inputs: list[list[int]], n_batch: int) -> Iterator[list[list[int]]]:
    """Consecutive inputs packed into batches of at most ``n_batch`` tokens and MAX_SEQUENCES
    sequences, as llama-cpp-python's ``embed`` packs them; an input longer than ``n_batch`` is refused."""
    group: list[list[int]] = []
    for tokens in inputs:
        if len(tokens) > n_batch:
            raise LLMCoreError(f"an input of {len(tokens)} tokens exceeds the batch size {n_batch}; "
                               f"raise n_batch (-b) and n_ctx (-c)")
        if group and (sum(map(len, group)) + len(tokens) > n_batch or len(group) == MAX_SEQUENCES):
            yield group
            group = []
        group.append(tokens)
    if group:
        yield group


def _encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")
    if encoding_format != "float":
        raise LLMCoreError(f"encoding_format {encoding_format!r}: use 'float' or 'base64'")
    return [float(x) for x in vector]
