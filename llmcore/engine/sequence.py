"""One sequence's generation, a step at a time: the loop llama.cpp runs per server slot and per
``llama-cli`` turn, written once. ``LLM.generate`` is its single-sequence case; the server's batcher
runs many of them over one context.

A :class:`Generation` is given the logits of its sequence's last position each step; it samples
(the sampler has seen the prompt, as llama.cpp feeds it), accepts the token, and says whether the
sequence ends there: at an end-of-generation token (``"eos"``, the token is not part of the
output), at a stop string (``"word"``, the text from the stop string on is dropped) or at a limit
(``"limit"``: ``max_tokens`` generated, or the sequence's context full). Text comes out as soon
as it is whole characters that cannot be the start of a stop string.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmcore.engine.model import Model
from llmcore.engine.sampling import Grammar, NaNLogitsError, Sampler, SamplingParams, dry_breaker_tokens
from llmcore.engine.stops import StopMatcher
from llmcore.tokenizer import Tokenizer

StopType = Literal["eos", "word", "limit"]


def sampler_for(model: Model, params: SamplingParams, n_ctx: int, grammar: Grammar | None = None) -> Sampler:
    """The sampler for a sequence of at most ``n_ctx`` tokens of ``model``: DRY's sequence
    breakers turned into the model's tokens, ``-1`` history lengths resolved to ``n_ctx``."""
    breakers = _dry_breakers(model.tokenizer, tuple(params.dry_sequence_breakers)) if params.dry_multiplier else None
    return Sampler(params, model.hparams.n_vocab, grammar=grammar, dry_breakers=breakers, n_ctx=n_ctx)


@functools.lru_cache(maxsize=8)
def _dry_breakers(tokenizer: Tokenizer, breakers: tuple[str, ...]) -> dict[int, list[tuple[int, ...]]]:
    """DRY's breakers as token sequences: a scan of the whole vocabulary, so kept per breaker set."""
    tokenize = functools.partial(tokenizer.tokenize, add_special=False)
    return dry_breaker_tokens(_pieces(tokenizer), tokenize, breakers)


@functools.lru_cache(maxsize=4)
def _pieces(tokenizer: Tokenizer) -> list[bytes]:
    return [tokenizer.token_to_piece(t) for t in range(tokenizer.n_vocab)]


def context_shift_span(n_past: int, n_prompt: int, n_ctx: int, *, n_keep: int = 0, n_discard: int = 0,
                       add_bos: bool = False) -> tuple[int, int]:
    """Where llama.cpp's context shift cuts a sequence of ``n_past`` cached tokens that has no room
    for the next one: the first ``keep`` stay, the ``discard`` after them are dropped and the rest
    move back by ``discard`` positions. ``n_keep`` counts prompt tokens after the BOS (-1: the whole
    prompt, llama-completion's ``--keep``); ``n_discard`` 0 means half of what is not kept."""
    keep = n_prompt if n_keep < 0 or n_keep > n_prompt else n_keep + add_bos
    keep = min(keep, n_ctx - 4)
    n_left = n_past - keep
    discard = min(n_discard or n_left // 2, max(0, n_left - 1))
    return keep, max(discard, 0)


@dataclass
class Step:
    """What one step produced: the sampled token, the text it makes safe to show (possibly empty),
    and why the sequence ends here (None while it goes on)."""

    token: int
    text: str
    stop: StopType | None = None


class Generation:
    """The generation of one sequence after ``prompt_tokens``. ``max_tokens`` -1 means until the
    sequence's ``n_ctx`` tokens are used (forever with ``context_shift``, whose caller makes room
    with :func:`context_shift_span`); ``stops`` are stop strings."""

    def __init__(self, tokenizer: Tokenizer, sampler: Sampler, prompt_tokens: Sequence[int], *, n_ctx: int,
                 max_tokens: int = -1, stops: Sequence[str] = (), ignore_eos: bool = False,
                 context_shift: bool = False) -> None:
        self.tokenizer = tokenizer
        self.sampler = sampler
        self.n_prompt = len(prompt_tokens)
        self.n_ctx = n_ctx
        self.context_shift = context_shift
        self.max_tokens = max_tokens
        self.ignore_eos = ignore_eos
        self.n_generated = 0
        self.stop: StopType | None = None
        self.t_start = time.perf_counter()
        self.t_first: float | None = None  # when the prompt's logits arrived
        self.t_end: float | None = None
        self._decoder = tokenizer.stream_decoder()
        self._stops = StopMatcher(list(stops))
        # penalties and DRY see the prompt, as in llama.cpp, whose samplers skip an image's positions
        # (negative ids here: engine.mtmd.prompt_ids)
        sampler.accept_prompt([t for t in prompt_tokens if t >= 0])

    def step(self, logits: np.ndarray) -> Step:
        """Sample the next token from the last position's ``logits`` and account for it."""
        if self.t_first is None:
            self.t_first = time.perf_counter()
        try:
            token = self.sampler.sample(logits)
        except NaNLogitsError:
            position = self.n_prompt + self.n_generated
            raise NaNLogitsError(f" at position {position} (token {self.n_generated + 1} of the reply)") from None
        self.sampler.accept(token)
        if self.tokenizer.is_eog(token) and not self.ignore_eos:
            self.stop = "eos"
            return Step(token, "", "eos")
        self.n_generated += 1
        text = self._stops.feed(self._decoder.feed(token))
        if self._stops.stopped:
            self.stop = "word"
        elif self.n_generated == self.max_tokens or (
                not self.context_shift and self.n_prompt + self.n_generated >= self.n_ctx):
            self.stop = "limit"
        return Step(token, text, self.stop)

    def finish(self) -> str:
        """End the generation (wherever it is): the text still held back, minus a stop string."""
        self.t_end = time.perf_counter()
        self._decoder.reset()
        tail = self._stops.flush()
        if self._stops.stopped:
            self.stop = "word"
        return tail

    @property
    def finish_reason(self) -> Literal["stop", "length"]:
        """OpenAI's name for why it ended: "length" at a limit (or while still going), else "stop"."""
        return "stop" if self.stop in ("eos", "word") else "length"

    @property
    def prompt_ms(self) -> float:
        return 1e3 * ((self.t_first or self.t_start) - self.t_start)

    @property
    def predicted_ms(self) -> float:
        if self.t_first is None:
            return 0.0
        return 1e3 * ((self.t_end or time.perf_counter()) - self.t_first)
