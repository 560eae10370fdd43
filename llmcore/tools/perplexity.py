"""Perplexity exactly as llama.cpp's ``llama-perplexity`` computes it.

The text is tokenized once (with BOS as the model says); it is cut into chunks of ``n_ctx``
tokens; each chunk is evaluated from an empty cache with its first token replaced by BOS (when
the model adds one), and only the second half of each chunk is scored: the logits at positions
``n_ctx/2 .. n_ctx-2`` predicting the next token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError


@dataclass
class PerplexityResult:
    chunk_ppls: list[float]  # running estimate after each chunk, as llama.cpp prints "[i]ppl"
    ppl: float
    uncertainty: float  # the "+/-" of llama.cpp's final estimate
    n_tokens_scored: int


def perplexity(llm, text: str, n_ctx: int, n_batch: int = 2048, n_chunks: int = -1,
               on_chunk: Callable[[int, float], None] | None = None) -> PerplexityResult:
    tokens = llm.tokenize(text, add_special=True, parse_special=False)
    if n_ctx > llm.n_ctx:
        raise LLMCoreError(f"perplexity: -c {n_ctx} exceeds the context the model was loaded with ({llm.n_ctx})")
    if len(tokens) < 2 * n_ctx:
        raise LLMCoreError(f"perplexity: you need at least {2 * n_ctx} tokens for a context of {n_ctx}; "
                           f"the text tokenizes to only {len(tokens)}")
    n_chunk = len(tokens) // n_ctx if n_chunks < 0 else min(n_chunks, len(tokens) // n_ctx)
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    ppls = []
    for i, chunk_logits in enumerate(_chunk_logits(llm, tokens, n_ctx, n_batch, n_chunk, first)):
        targets = np.asarray(tokens[i * n_ctx + first + 1:(i + 1) * n_ctx], np.int64)
        logprobs = log_softmax_at(chunk_logits[: len(targets)], targets)
        nll -= float(logprobs.sum())
        nll2 += float(np.square(logprobs).sum())
        count += len(targets)
        ppls.append(math.exp(nll / count))
        if on_chunk:
            on_chunk(i + 1, ppls[-1])
    mean, mean2 = nll / count, nll2 / count
    var = mean2 - mean * mean
    spread = math.sqrt(var / (count - 1)) if var > 0 else 0.0
    ppl = math.exp(mean)
    return PerplexityResult(ppls, ppl, spread * ppl, count)


def _chunk_logits(llm, tokens: list[int], n_ctx: int, n_batch: int, n_chunk: int, first: int) -> Iterator[np.ndarray]:
    """Logits of positions ``first..n_ctx-1`` of each chunk, evaluated from an empty cache."""
    add_bos = llm.tokenizer.add_bos
    for i in range(n_chunk):
        chunk = list(tokens[i * n_ctx:(i + 1) * n_ctx])
        if add_bos:
            chunk[0] = llm.tokenizer.bos_id
        llm.reset()
        batch = Batch(chunk, np.arange(n_ctx), np.zeros(n_ctx), np.arange(n_ctx) >= first)
        yield llm.context.decode(batch, n_batch=min(n_batch, n_ctx))


def log_softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target) per row, with llama.cpp's max-subtracted float exponentials summed in double."""
    peak = logits.max(axis=1, keepdims=True)
    shifted = logits - peak
    log_sum = np.log(np.exp(shifted).sum(axis=1, dtype=np.float64))
    return shifted[np.arange(len(targets)), targets].astype(np.float64) - log_sum
