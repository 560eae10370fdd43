"""Speculative decoding, as llama.cpp's common/speculative: a drafter proposes the next few tokens,
the target model scores them all in one batch, and the target's own sampler walks the rows, keeping
drafted tokens while it samples the same ones. Every output token is sampled from the target's
distribution at its position (greedy output is plain decoding's), only faster when drafts are
accepted.

Drafters (``--spec-type``): ``draft-simple``, a smaller model of the same vocabulary greedily
decoding ahead (``-md``); ``ngram-simple``, the tokens that followed the last occurrence of the
current n-gram in the sequence so far (common_ngram_simple_draft: no second model, worth it on
repetitive text such as code or lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.engine.context import Context
from llmcore.engine.kv_cache import common_prefix
from llmcore.errors import LLMCoreError
from llmcore.tokenizer import Tokenizer

#: llama.cpp 0.3.36's names of the speculative types llmcore implements
SPEC_TYPES = ("none", "draft-simple", "ngram-simple")


class Drafter(Protocol):
    def draft(self, history: list[int], last: int, n_max: int) -> list[int]:
        """Up to ``n_max`` tokens likely to follow ``history`` + [``last``] (``last`` sampled, not
        yet decoded by the target)."""


@dataclass
class DraftParams:
    """llama.cpp's ``--spec-draft-n-max``, ``--spec-draft-n-min`` and ``--spec-draft-p-min`` (its
    defaults), and the n-gram drafter's ``--spec-ngram-simple-size-n`` / ``-size-m``."""

    n_max: int = 3
    n_min: int = 0
    p_min: float = 0.0
    ngram_size_n: int = 12
    ngram_size_m: int = 48


class ModelDrafter:
    """draft-simple: a draft model's context (sequence 0) greedily continues the target's tokens;
    a draft token less probable than ``p_min`` ends the draft. The draft context keeps what it
    decoded and reuses the common prefix with the next request, as llama.cpp's draft context does."""

    def __init__(self, context: Context, tokenizer: Tokenizer, target: Tokenizer, p_min: float) -> None:
        _check_vocabularies(tokenizer, target)
        self.context = context
        self.p_min = p_min
        self._cached: list[int] = []

    def draft(self, history: list[int], last: int, n_max: int) -> list[int]:
        wanted = [*history, last]
        if len(wanted) + n_max > self.context.n_ctx:
            return []
        keep = common_prefix(self._cached, wanted, limit=len(wanted) - 1)
        self.context.seq_remove(0, keep)
        logits = self.context.decode(Batch.for_sequence(wanted[keep:], keep))[-1]
        self._cached = wanted
        drafted: list[int] = []
        while len(drafted) < n_max:
            token = int(np.argmax(logits))
            if self.p_min > 0 and _top_probability(logits) < self.p_min:
                break
            drafted.append(token)
            if len(drafted) == n_max:
                break
            logits = self.context.decode(Batch.for_sequence([token], len(self._cached)))[-1]
            self._cached.append(token)
        return drafted


class NgramDrafter:
    """ngram-simple: the ``size_m`` tokens that followed the latest earlier occurrence of the last
    ``size_n`` tokens (llama.cpp's common_ngram_simple_draft, token for token)."""

    def __init__(self, size_n: int, size_m: int) -> None:
        self.size_n, self.size_m = size_n, size_m

    def draft(self, history: list[int], last: int, n_max: int) -> list[int]:
        """``n_max`` plays no part: the draft is up to ``size_m`` long, as llama.cpp's."""
        tokens, n = history, self.size_n
        cur_len = len(tokens)
        if cur_len <= n + self.size_m + 1:
            return []
        pattern = [*tokens[cur_len - n + 1:], last]
        for j in range(cur_len - n - 1, 0, -1):  # the latest match first; position 0 never counts
            if tokens[j:j + n] == pattern:
                copy = min(self.size_m, cur_len - (j + n))
                return [] if copy < n else tokens[j + n:j + n + copy]
        return []


class Speculation:
    """A drafter under llama.cpp's limits: a draft model's draft is at most ``n_max`` tokens and is
    dropped when shorter than ``n_min``; no draft outgrows the ``room`` left in the context."""

    def __init__(self, spec_type: str, drafter: Drafter, params: DraftParams) -> None:
        self.spec_type, self.drafter, self.params = spec_type, drafter, params

    def draft(self, history: list[int], last: int, room: int) -> list[int]:
        if room <= 0:
            return []
        drafted = self.drafter.draft(history, last, min(self.params.n_max, room))
        if self.spec_type == "draft-simple" and len(drafted) < self.params.n_min:
            return []
        return drafted[:room]


def _top_probability(logits: np.ndarray) -> float:
    shifted = np.exp(logits - logits.max(), dtype=np.float64)
    return float(1.0 / shifted.sum())


def _check_vocabularies(draft: Tokenizer, target: Tokenizer) -> None:
    """llama.cpp's common_speculative_are_compatible: the same vocabulary, BOS and EOS."""
    if draft.n_vocab != target.n_vocab and abs(draft.n_vocab - target.n_vocab) > 128:
        raise LLMCoreError(f"the draft model's vocabulary ({draft.n_vocab} tokens) does not match the target's "
                           f"({target.n_vocab})")
    if (draft.bos_id, draft.eos_id) != (target.bos_id, target.eos_id):
        raise LLMCoreError("the draft model's BOS/EOS tokens do not match the target's")
    for token in range(min(draft.n_vocab, target.n_vocab)):
        if draft.token_text(token) != target.token_text(token):
            raise LLMCoreError(f"the draft model's token {token} ({draft.token_text(token)!r}) differs from the "
                               f"target's ({target.token_text(token)!r})")


__all__ = ["SPEC_TYPES", "DraftParams", "Drafter", "ModelDrafter", "NgramDrafter", "Speculation"]
