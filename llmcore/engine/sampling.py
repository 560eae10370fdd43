"""Token sampling: llama.cpp's sampler chain (``src/llama-sampler.cpp``, ``common/sampling.cpp``).

A :class:`Sampler` turns one row of logits into a token id the way ``common_sampler`` does:

* logit bias is added first;
* with ``mirostat == 0`` the stages named by ``SamplingParams.samplers`` run in order (default
  ``penalties, dry, top_n_sigma, top_k, typ_p, top_p, min_p, xtc, temperature``), then a seeded
  random draw (llama.cpp's ``dist``);
* with ``mirostat == 1`` or ``2`` the chain is replaced by temperature + mirostat v1 / v2;
* ``temperature <= 0`` means greedy: the highest logit wins (a plain argmax when no stage before the
  temperature can drop the best token, as in the default chain).

Each stage is also a public function over :class:`TokenCandidates` (llama.cpp's
``llama_token_data_array``) so it can be tested against llama.cpp's ``tests/test-sampling.cpp``.

Randomness is llama.cpp's: ``std::mt19937`` seeded with the seed (numpy's MT19937 with the
legacy seeding, which is the standard's), drawn through libstdc++'s ``uniform_real_distribution``
(:class:`StdUniform`); XTC has its own generator seeded with the same seed, as in llama.cpp. So a
seed gives llama.cpp's tokens wherever the logits and the chain agree.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmcore.errors import LLMCoreError

#: Stage names accepted in ``SamplingParams.samplers`` (llama.cpp's ``common_sampler_type`` names).
SAMPLER_NAMES = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")

#: ``seed`` values that mean "pick a random seed" (None, the server's -1, and LLAMA_DEFAULT_SEED).
_RANDOM_SEEDS = (None, -1, 0xFFFFFFFF)

# Candidate sets larger than this are ranked by selecting a top prefix instead of a full sort.
_FULL_SORT_LIMIT = 1024
# Prefix sizes tried, in order, when a cumulative cut-off (top_p, typical) needs ranked candidates.
_PREFIX_STEPS = (256, 8192)
# Arrays at most this long are ranked directly; longer ones first keep values above a subsample threshold.
_SUBSAMPLE_MIN = 8192

# DRY's clamp of the penalty exponent: log(FLT_MAX), as llama.cpp computes it.
_FLOAT_MAX_LOG = 88.7228391


# llama.cpp keeps these settings as C floats and int32_t: a value beyond them is refused
# rather than silently becoming inf (``dynatemp_range: 1e308``) or overflowing a buffer size.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT32_RANGE = (-(2**31), 2**31 - 1)
#: At most this many DRY sequence breakers (llama.cpp has no limit, but its scan of the
#: vocabulary per breaker is C; its default is 4); each is cut to 40 bytes, as in llama.cpp.
MAX_DRY_BREAKERS = 64
_DRY_BREAKER_BYTES = 40
_DRY_TAIL_TOKENS = 20


class SamplingError(LLMCoreError):
    """Sampling parameters or logits that cannot be sampled from (bad field value, wrong shape, no allowed token).
    ``field`` names the setting at fault (None when it is not a setting)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NaNLogitsError(SamplingError):
    """The model's logits hold NaN (a broken model file or backend): nothing can be sampled.
    ``where`` says at which token, where the caller knows."""

    def __init__(self, where: str = "") -> None:
        super().__init__(f"sampling: the model produced NaN logits{where} (a broken model file or backend)")


def knob(default: Any, *flags: str, help: str, metavar: str | None = None, request: bool = True) -> Any:
    """A sampling setting: its llama.cpp default, its llama.cpp command-line ``flags`` (none: not
    a flag) and whether a server request may set it. The CLI flags, the ``LLM`` keyword arguments
    and the server's request fields are all derived from these declarations."""
    return Field(default, description=help,
                 json_schema_extra={"flags": list(flags), "metavar": metavar, "request": request})


class SamplingParams(BaseModel):
    """Sampling settings; defaults are llama.cpp's ``common_params_sampling`` defaults.

    ``repeat_last_n`` / ``dry_penalty_last_n`` of -1 mean the whole context (``Sampler``'s ``n_ctx``,
    unbounded when that is not given), 0 disables the history. ``seed`` None (or -1 / 0xFFFFFFFF)
    picks a random seed. ``logit_bias`` maps token id to an additive bias (``-inf`` bans the token);
    ids outside the vocabulary are ignored, as in llama.cpp. ``dry_sequence_breakers`` are strings;
    :func:`llmcore.engine.sequence.sampler_for` turns them into tokens of the model's vocabulary.

    This model is the one declaration of the sampling settings: the CLI's flags
    (``llmcore.cli.sampling_args``), ``LLM``'s keyword arguments and the server's request fields
    (``llmcore.server.schemas``) are derived from its fields.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    temperature: float = knob(0.8, "--temp", "--temperature", help="temperature; <= 0 is greedy")
    top_k: int = knob(40, "--top-k", help="top-k sampling, 0 = disabled")
    top_p: float = knob(0.95, "--top-p", help="top-p sampling, 1.0 = disabled")
    min_p: float = knob(0.05, "--min-p", help="min-p sampling, 0.0 = disabled")
    typical_p: float = knob(1.0, "--typical", "--typical-p", help="locally typical sampling p, 1.0 = disabled")
    repeat_penalty: float = knob(1.0, "--repeat-penalty", help="penalty for repeated tokens, 1.0 = disabled")
    repeat_last_n: int = knob(64, "--repeat-last-n", help="tokens considered for penalties, 0 = disabled, -1 = ctx size")
    frequency_penalty: float = knob(0.0, "--frequency-penalty", help="repeat alpha frequency penalty, 0.0 = disabled")
    presence_penalty: float = knob(0.0, "--presence-penalty", help="repeat alpha presence penalty, 0.0 = disabled")
    mirostat: int = knob(0, "--mirostat", help="Mirostat sampling: 0 = disabled, 1 = Mirostat, 2 = Mirostat 2.0")
    mirostat_tau: float = knob(5.0, "--mirostat-ent", help="Mirostat target entropy, parameter tau")
    mirostat_eta: float = knob(0.1, "--mirostat-lr", help="Mirostat learning rate, parameter eta")
    seed: int | None = knob(None, "-s", "--seed", metavar="SEED", help="RNG seed, -1 or none = random")
    logit_bias: dict[int, float] = knob({}, "-l", "--logit-bias", metavar="TOKEN_ID(+/-)BIAS",
                                        help="add BIAS to token TOKEN_ID's logit, e.g. 15043+1 or 15043-inf; repeatable")
    min_keep: int = knob(0, "--min-keep", help="tokens each sampler keeps at least, 0 = its own minimum")
    n_probs: int = knob(0, help="report the probabilities of the n most likely tokens after sampling",
                        request=False)
    dynatemp_range: float = knob(0.0, "--dynatemp-range", help="dynamic temperature range, 0.0 = disabled")
    dynatemp_exponent: float = knob(1.0, "--dynatemp-exp", help="dynamic temperature exponent")
    xtc_probability: float = knob(0.0, "--xtc-probability", help="XTC probability, 0.0 = disabled")
    xtc_threshold: float = knob(0.1, "--xtc-threshold", help="XTC threshold, > 0.5 = disabled")
    top_n_sigma: float = knob(-1.0, "--top-nsigma", "--top-n-sigma", help="top-n-sigma sampling, -1.0 = disabled")
    dry_multiplier: float = knob(0.0, "--dry-multiplier", help="DRY sampling multiplier, 0.0 = disabled")
    dry_base: float = knob(1.75, "--dry-base", help="DRY sampling base")
    dry_allowed_length: int = knob(2, "--dry-allowed-length", help="DRY: repeats this long go unpenalised")
    dry_penalty_last_n: int = knob(64, "--dry-penalty-last-n", help="DRY: tokens scanned, 0 = disabled, -1 = ctx size")
    dry_sequence_breakers: tuple[str, ...] = knob(("\n", ":", '"', "*"), "--dry-sequence-breaker", metavar="STRING",
                                                  help="DRY sequence breaker, repeatable; 'none' for none")
    samplers: tuple[str, ...] = knob(SAMPLER_NAMES, "--samplers", metavar="SAMPLERS",
                                     help="samplers in order, separated by ';'")

    @model_validator(mode="after")
    def _check(self) -> SamplingParams:
        def refuse(name: str, problem: str) -> SamplingError:
            return SamplingError(f"sampling: field '{name}': {problem}", name)

        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if field.annotation is float and not abs(value) <= _FLOAT32_MAX:  # NaN fails too
                raise refuse(name, f"must be a finite number of at most {_FLOAT32_MAX:.4g} in size, got {value!r}")
            if field.annotation is int and not _INT32_RANGE[0] <= value <= _INT32_RANGE[1]:
                raise refuse(name, f"must fit in 32 bits ({_INT32_RANGE[0]}..{_INT32_RANGE[1]}), got {value!r}")
        if self.mirostat not in (0, 1, 2):
            raise refuse("mirostat", f"must be 0, 1 or 2, got {self.mirostat!r}")
        if self.repeat_penalty <= 0:  # logits are divided by it
            raise refuse("repeat_penalty", f"must be > 0 (1.0 = disabled), got {self.repeat_penalty!r}")
        for name in ("min_keep", "n_probs"):
            if getattr(self, name) < 0:
                raise refuse(name, f"must be >= 0, got {getattr(self, name)!r}")
        for name in ("repeat_last_n", "dry_penalty_last_n"):
            if getattr(self, name) < -1:
                raise refuse(name, f"must be >= -1, got {getattr(self, name)!r}")
        if any(math.isnan(bias) for bias in self.logit_bias.values()):
            raise refuse("logit_bias", "a bias must be a number or ±inf, not NaN")
        if len(self.dry_sequence_breakers) > MAX_DRY_BREAKERS:
            raise refuse("dry_sequence_breakers",
                         f"at most {MAX_DRY_BREAKERS} breakers, got {len(self.dry_sequence_breakers)}")
        for position, name in enumerate(self.samplers):
            if name not in SAMPLER_NAMES:
                raise SamplingError(
                    f"sampling: field 'samplers'[{position}]: unknown sampler {name!r} "
                    f"(known: {', '.join(SAMPLER_NAMES)})", "samplers"
                )
        return self

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SamplingParams:
        """Validated params from keyword settings; a wrong name or value is a one-line SamplingError."""
        try:
            return cls(**settings)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "sampling"
            known = "" if problem["type"] != "extra_forbidden" else f" (known: {', '.join(cls.model_fields)})"
            field = str(problem["loc"][0]) if problem["loc"] else None
            raise SamplingError(f"sampling: field {where!r}: {problem['msg']}{known}", field) from None


class Grammar(Protocol):
    """What the sampler needs from a constrained-decoding object."""

    def allows(self, token: int) -> bool:
        """Whether ``token`` may come next."""

    def fill_mask(self, mask: np.ndarray) -> None:
        """Set ``mask[token] = True`` for every token that may come next (``mask`` arrives all False)."""

    def accept(self, token: int) -> None:
        """Advance past ``token``."""


@dataclass(frozen=True)
class CandidateProbs:
    """Top candidates for the server's ``n_probs``: ids and probabilities, most probable first."""

    ids: np.ndarray
    probs: np.ndarray
    selected_prob: float


class TokenCandidates:
    """The candidate tokens a stage sees (llama.cpp's ``llama_token_data_array``).

    ``ids`` and ``logits`` are parallel arrays; ``probs`` holds the last softmax (None when stale);
    ``sorted`` says the candidates are in descending logit order. The logits array passed in is never
    written: the first stage that changes logits works on a copy.
    """

    __slots__ = ("ids", "logits", "probs", "sorted", "full_vocab", "_owns_logits")

    def __init__(self, ids: np.ndarray, logits: np.ndarray, *, full_vocab: bool = False) -> None:
        self.ids = ids
        self.logits = logits
        self.probs: np.ndarray | None = None
        self.sorted = False
        self.full_vocab = full_vocab  # ids == arange(n_vocab): token t sits at position t
        self._owns_logits = False

    @classmethod
    def from_logits(cls, logits: np.ndarray, ids: np.ndarray | None = None) -> TokenCandidates:
        """All tokens of a vocabulary row; ``ids`` may pass a cached ``arange(len(logits))``."""
        logits = np.asarray(logits, dtype=np.float32)
        if ids is None:
            ids = np.arange(logits.size, dtype=np.int32)
        return cls(ids, logits, full_vocab=True)

    @classmethod
    def from_probs(cls, probs: Sequence[float]) -> TokenCandidates:
        """Tokens 0..n-1 with logits log(p) and probs p, as test-sampling.cpp's ``sampler_tester`` builds them."""
        p = np.asarray(probs, dtype=np.float32)
        with np.errstate(divide="ignore"):
            candidates = cls.from_logits(np.log(p))
        candidates.probs = p
        return candidates

    @property
    def size(self) -> int:
        return int(self.ids.size)

    def mutable_logits(self) -> np.ndarray:
        """The logits, copied on first write; marks order and probabilities as stale."""
        if not self._owns_logits:
            self.logits = self.logits.copy()
            self._owns_logits = True
        self.sorted = False
        self.probs = None
        return self.logits

    def keep(self, positions: np.ndarray | slice, *, is_sorted: bool) -> None:
        """Keep only the candidates at ``positions``, in that order."""
        self.ids = self.ids[positions]
        self.logits = self.logits[positions]
        if self.probs is not None:
            self.probs = self.probs[positions]
        self._owns_logits = self._owns_logits or not isinstance(positions, slice)  # a slice is a view
        self.full_vocab = False
        self.sorted = is_sorted


# ---------------------------------------------------------------------------------------------
# ranking helpers


def _descending_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest values, largest first, ties broken by lower position.

    Avoids sorting the whole array: a threshold from a strided subsample keeps a few hundred
    candidates (falling back to the exact k-th value when the guess keeps too few).
    """
    n = values.size
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    pool = None
    if n > _SUBSAMPLE_MIN and k < n // 16:
        stride = n // _SUBSAMPLE_MIN
        sample = values[::stride]
        rank = min(sample.size, 2 * (k // stride + 1) + 16)  # ~2x k expected survivors, plus slack
        guess = np.partition(sample, sample.size - rank)[sample.size - rank]
        pool = np.flatnonzero(values >= guess)
        if pool.size < k:
            pool = None
    if pool is None:
        pool = np.arange(n)
    pool_values = values[pool]
    if pool.size > k:
        kth = np.partition(pool_values, pool.size - k)[pool.size - k]
        above = pool[pool_values > kth]
        ties = pool[pool_values == kth][: k - above.size]
        pool = np.concatenate((above, ties))
        pool_values = values[pool]
    return pool[np.lexsort((pool, -pool_values))]


def _ranked_cut(
    key: np.ndarray, weights: np.ndarray, reached: Callable[[np.ndarray], np.ndarray], *, rank_all: bool = True
) -> np.ndarray | None:
    """Positions by descending ``key``, up to and including the first prefix where ``reached(cumsum)`` holds.

    ``reached`` maps float32 running sums of ``weights`` to a boolean array; all positions are kept
    when it never holds. Large arrays are ranked a prefix at a time (llama.cpp's top_p does the same);
    with ``rank_all=False`` None is returned instead of ranking a whole large array.
    """
    n = key.size
    steps = [s for s in _PREFIX_STEPS if s < n] if n > _FULL_SORT_LIMIT else []
    if rank_all or not steps:
        steps.append(n)
    for limit in steps:
        order = _descending_positions(key, limit)
        hits = reached(np.cumsum(weights[order], dtype=np.float32))
        if hits.any():
            return order[: int(np.argmax(hits)) + 1]
    return order if limit == n else None


def _locate(candidates: TokenCandidates, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For unique token ids, the candidate positions holding them and the matching indices into ``tokens``."""
    if candidates.full_vocab:
        return tokens, np.arange(tokens.size)
    order = np.argsort(tokens)
    sorted_tokens = tokens[order]
    slot = np.minimum(np.searchsorted(sorted_tokens, candidates.ids), sorted_tokens.size - 1)
    positions = np.flatnonzero(sorted_tokens[slot] == candidates.ids)
    return positions, order[slot[positions]]


class StdUniform:
    """``std::uniform_real_distribution<double>`` (``single``: ``<float>``) over ``std::mt19937(seed)``
    as libstdc++ computes it (generate_canonical): a double from two 32-bit outputs, x0 + x1 * 2^32
    over 2^64, a float from one, x0 over 2^32 in float; a result of 1 becomes the largest below 1."""

    def __init__(self, seed: int, single: bool = False) -> None:
        key, pos = np.random.RandomState(seed % 2**32).get_state()[1:3]  # std::mt19937's seeding
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": pos}}
        self._single = single

    def random(self) -> float:
        if self._single:
            value = np.float32(self._bits.random_raw()) / np.float32(2.0**32)
            return float(value if value < 1 else np.nextafter(np.float32(1), np.float32(0)))
        low, high = (float(x) for x in self._bits.random_raw(2))
        value = (low + high * 2.0**32) / 2.0**64
        return value if value < 1.0 else math.nextafter(1.0, 0.0)


def _inverse_cdf(weights: np.ndarray, rnd: float) -> int:
    """First position whose running sum of ``weights`` reaches ``rnd`` times the total (llama.cpp's dist)."""
    running = np.cumsum(weights, dtype=np.float64)
    return min(int(np.searchsorted(running, running[-1] * rnd, side="left")), weights.size - 1)


def _entropy(probs: np.ndarray) -> float:
    """Shannon entropy in nats; zero-probability tokens contribute nothing (C's 0*log(0) gives NaN)."""
    nonzero = probs[probs > 0]
    return float(-(nonzero * np.log(nonzero)).sum(dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# stages (each mirrors the llama.cpp sampler of the same name)


def softmax(candidates: TokenCandidates, *, sort: bool) -> None:
    """Fill ``candidates.probs`` (llama_sampler_softmax_impl); ``sort`` first orders by descending logit."""
    if sort and not candidates.sorted:
        candidates.keep(_descending_positions(candidates.logits, candidates.size), is_sorted=True)
    logits = candidates.logits
    exps = np.exp(logits - (logits[0] if candidates.sorted else logits.max()))
    exps *= np.float32(1.0 / float(exps.sum()))
    candidates.probs = exps


def apply_logit_bias(candidates: TokenCandidates, tokens: np.ndarray, biases: np.ndarray) -> None:
    """Add ``biases[i]`` to the logit of ``tokens[i]`` (unique ids) wherever it is a candidate.

    A token masked out (-inf) stays masked whatever its bias; a ``+inf`` bias forces its token:
    it alone stays (several: one of them, uniformly), as in llama.cpp where it outranks every other."""
    positions, which = _locate(candidates, tokens)
    if not positions.size:
        return
    logits = candidates.mutable_logits()
    with np.errstate(invalid="ignore"):
        biased = logits[positions] + biases[which]
    biased[np.isnan(biased)] = -np.inf  # -inf + inf
    logits[positions] = biased
    forced = positions[biased == np.inf]
    if forced.size:
        logits.fill(-np.inf)
        logits[forced] = 0.0


def apply_penalties(
    candidates: TokenCandidates, token_counts: Mapping[int, int], repeat: float, frequency: float, presence: float
) -> None:
    """Repetition penalties over the counted recent tokens (llama_sampler_penalties).

    The repeat penalty divides positive logits and multiplies non-positive ones; then
    ``count * frequency + presence`` is subtracted.
    """
    if not token_counts:
        return
    tokens = np.fromiter(token_counts.keys(), dtype=np.int64, count=len(token_counts))
    counts = np.fromiter(token_counts.values(), dtype=np.float32, count=len(token_counts))
    positions, which = _locate(candidates, tokens)
    logits = candidates.mutable_logits()
    if not positions.size:
        return
    current = logits[positions]
    repeat32 = np.float32(repeat)
    current = np.where(current <= 0, current * repeat32, current / repeat32)
    logits[positions] = current - (counts[which] * np.float32(frequency) + np.float32(presence))


def apply_dry(
    candidates: TokenCandidates,
    history: Sequence[int],
    multiplier: float,
    base: float,
    allowed_length: int,
    last_n: int,
    breakers: Mapping[int, Sequence[Sequence[int]]],
) -> None:
    """DRY ("don't repeat yourself") penalty (llama_sampler_dry, ported from koboldcpp).

    ``history`` is oldest first; ``last_n`` < 0 uses all of it. ``breakers`` maps a breaker's head
    token to the tails that complete it (an empty tail: the head alone breaks sequences). The loops
    run over the history (at most ``last_n`` tokens), never over the vocabulary.
    """
    if multiplier == 0.0 or base < 1.0 or last_n == 0:
        return
    n = len(history) if last_n < 0 else min(len(history), last_n)
    if n <= allowed_length:
        return
    recent = list(history)[len(history) - n :][::-1]  # recent[i] is llama.cpp's last_tokens.rat(i)

    # Step 1: a restart sequence limits how far back a repetition may reach.
    rep_limit = n
    for i, token in enumerate(recent):
        longest = -1
        for tail in breakers.get(token, ()):
            if longest < len(tail) <= i and all(tail[o] == recent[i - o - 1] for o in range(len(tail))):
                longest = len(tail)
        if longest >= 0:
            rep_limit = i - longest
            break
    if rep_limit < allowed_length:
        return

    # Step 2: reverse Z-algorithm: repeat_count[n-1-k] = length of the suffix that also ends k tokens back.
    repeat_count = [0] * n
    last = n - 1
    lt = rt = 0
    for k in range(1, n):
        if k > rt:
            length = 0
            while length + k < n and recent[length] == recent[length + k]:
                length += 1
            repeat_count[last - k] = min(length, rep_limit)
            if length > 0:
                lt, rt = k, k + length - 1
        else:
            pair = k - lt
            right_part_len = rt - k + 1
            if repeat_count[last - pair] < right_part_len:
                repeat_count[last - k] = min(repeat_count[last - pair], rep_limit)
            else:
                i = rt + 1
                while i < n and recent[i] == recent[i - k]:
                    i += 1
                repeat_count[last - k] = min(i - k, rep_limit)
                lt, rt = k, i - 1

    # Step 3: the token that followed each long-enough repeat would extend it.
    longest_repeat: dict[int, int] = {}
    for i in range(n - 1):
        length = repeat_count[i]
        if length >= allowed_length:
            token = recent[n - 2 - i]
            longest_repeat[token] = max(longest_repeat.get(token, 0), length)

    # Step 4: penalise them, except tokens that alone break sequences.
    max_exponent = int(_FLOAT_MAX_LOG / math.log(base)) if base > 1.000001 else 0
    penalties: dict[int, float] = {}
    for token, length in longest_repeat.items():
        if any(len(tail) == 0 for tail in breakers.get(token, ())):
            continue
        exponent = length - allowed_length
        if max_exponent > 0:
            exponent = min(exponent, max_exponent)
        penalties[token] = multiplier * base**exponent
    if penalties:
        tokens = np.fromiter(penalties.keys(), dtype=np.int64, count=len(penalties))
        amounts = np.fromiter(penalties.values(), dtype=np.float32, count=len(penalties))
        positions, which = _locate(candidates, tokens)
        candidates.mutable_logits()[positions] -= amounts[which]


def apply_top_n_sigma(candidates: TokenCandidates, n: float) -> None:
    """Mask (to -inf) logits more than ``n`` standard deviations below the maximum; ``n <= 0`` is a no-op."""
    if n <= 0.0 or candidates.size <= 1:
        return
    logits = candidates.logits
    finite = logits[logits != -np.inf]
    if finite.size:
        mean = finite.mean(dtype=np.float64)
        std = math.sqrt(float(np.square(finite - mean, dtype=np.float64).mean()))
    else:
        std = 0.0
    below = logits < np.float32(logits.max() - n * std)
    if below.any():
        was_sorted = candidates.sorted
        candidates.mutable_logits()[below] = -np.inf
        candidates.sorted = was_sorted  # only the lowest logits changed


def apply_top_k(candidates: TokenCandidates, k: int) -> None:
    """Keep the ``k`` highest logits, sorted descending; ``k <= 0`` is a no-op."""
    if k <= 0:
        return
    k = min(k, candidates.size)
    if candidates.sorted:
        candidates.keep(slice(0, k), is_sorted=True)
    else:
        candidates.keep(_descending_positions(candidates.logits, k), is_sorted=True)


def apply_typical(candidates: TokenCandidates, p: float, min_keep: int) -> None:
    """Locally typical sampling: keep tokens whose surprise is closest to the entropy, up to mass > ``p``."""
    if p >= 1.0:
        return
    softmax(candidates, sort=False)
    probs = candidates.probs
    with np.errstate(divide="ignore"):
        shifted = np.abs(-np.log(probs) - np.float32(_entropy(probs)))
    threshold = np.float32(p)

    def reached(running: np.ndarray) -> np.ndarray:
        hits = running > threshold
        hits[: max(min_keep - 1, 0)] = False
        return hits

    candidates.keep(_ranked_cut(-shifted, probs, reached), is_sorted=False)


def apply_top_p(candidates: TokenCandidates, p: float, min_keep: int) -> None:
    """Nucleus: keep the smallest most-probable prefix with cumulative probability >= ``p`` (at least ``min_keep``)."""
    if p >= 1.0:
        return
    softmax(candidates, sort=False)
    threshold = np.float32(p)

    def reached(running: np.ndarray) -> np.ndarray:
        hits = running >= threshold
        hits[: max(min_keep - 1, 0)] = False
        return hits

    probs = candidates.probs
    if candidates.sorted:
        hits = reached(np.cumsum(probs, dtype=np.float32))
        candidates.keep(slice(0, int(np.argmax(hits)) + 1 if hits.any() else None), is_sorted=True)
        return
    kept = _ranked_cut(candidates.logits, probs, reached, rank_all=False)
    if kept is not None:
        candidates.keep(kept, is_sorted=True)
        return
    # The mass is spread over more than the largest prefix: find the cut from the sorted probabilities
    # alone and keep that set unsorted (same set; ranking it all would cost a full argsort).
    descending = np.sort(probs)[::-1]
    hits = reached(np.cumsum(descending, dtype=np.float32))
    if not hits.any():
        return
    cut = int(np.argmax(hits)) + 1
    smallest = descending[cut - 1]
    kept_mask = probs > smallest
    kept_mask[np.flatnonzero(probs == smallest)[: cut - int(kept_mask.sum())]] = True
    candidates.keep(np.flatnonzero(kept_mask), is_sorted=False)


def apply_min_p(candidates: TokenCandidates, p: float, min_keep: int) -> None:
    """Keep tokens whose probability is at least ``p`` times the most probable one's."""
    if p <= 0.0 or candidates.size == 0:
        return
    log_p = np.float32(math.log(p))
    if not candidates.sorted:
        kept = np.flatnonzero(candidates.logits >= candidates.logits.max() + log_p)
        if kept.size and kept.size >= min_keep:
            candidates.keep(kept, is_sorted=False)
            return
        apply_top_k(candidates, candidates.size)  # full sort, as llama.cpp falls back to
    logits = candidates.logits
    stop = (logits[1:] < logits[0] + log_p) & (np.arange(1, candidates.size) >= min_keep)
    candidates.keep(slice(0, int(np.argmax(stop)) + 1 if stop.any() else None), is_sorted=True)


def apply_xtc(
    candidates: TokenCandidates, probability: float, threshold: float, min_keep: int, rng: StdUniform | np.random.Generator
) -> None:
    """Exclude top choices (XTC).

    With chance ``probability``, drop every token at or above ``threshold`` except the least likely of them.
    """
    if probability <= 0.0 or threshold > 0.5 or candidates.size < 2:
        return
    if rng.random() > probability:
        return
    softmax(candidates, sort=True)
    above = candidates.probs >= np.float32(threshold)
    pos_last = int(np.argmin(above)) - 1 if not above.all() else candidates.size - 1  # last of the leading run
    if pos_last > 0 and candidates.size - pos_last >= min_keep:
        candidates.keep(slice(pos_last, None), is_sorted=True)


def apply_temperature(
    candidates: TokenCandidates, temperature: float, dynatemp_range: float = 0.0, dynatemp_exponent: float = 1.0
) -> None:
    """Divide logits by the temperature (llama_sampler_temp_ext).

    ``temperature <= 0`` keeps only the first highest logit (others become -inf). A positive
    ``dynatemp_range`` picks the temperature from the normalised entropy of the candidates.
    """
    if dynatemp_range > 0.0:
        if candidates.size <= 1:
            return
        low, high = max(0.0, temperature - dynatemp_range), temperature + dynatemp_range
        max_entropy = -math.log(1.0 / candidates.size)
        softmax(candidates, sort=True)
        with np.errstate(all="ignore"):  # C's powf: 0 ** -1 is inf, not an exception
            scale = np.float64(_entropy(candidates.probs) / max_entropy) ** np.float64(dynatemp_exponent)
        # as large as a float may be (llama.cpp's overflows to inf, and -inf logits / inf are NaN)
        temperature = min(low + (high - low) * float(scale), _FLOAT32_MAX)
    if candidates.size == 0:
        return
    if not _is_positive_float32(temperature):  # llama.cpp's float: 1e-300 is 0, greedy
        best = int(np.argmax(candidates.logits))
        was_sorted = candidates.sorted
        logits = candidates.mutable_logits()
        kept = logits[best]
        logits.fill(-np.inf)
        logits[best] = kept
        candidates.sorted = was_sorted
        return
    was_sorted = candidates.sorted
    logits = candidates.mutable_logits()
    with np.errstate(over="ignore"):
        scaled = logits / np.float32(temperature)
    if np.isinf(scaled.max()):
        # so small a temperature overflows the best logits: the limit is all mass on the best
        scaled = np.where(logits == logits.max(), np.float32(0), np.float32(-np.inf))
    logits[:] = scaled
    candidates.sorted = was_sorted  # dividing by a positive number keeps the order
    if dynatemp_range > 0.0:
        softmax(candidates, sort=False)


def _is_positive_float32(value: float) -> bool:
    return bool(np.float32(value) > 0)


def sample_dist(candidates: TokenCandidates, rng: StdUniform | np.random.Generator) -> int:
    """Draw a position from the softmax of the candidates; leaves the normalised probs in ``candidates.probs``."""
    if candidates.size == 0:
        raise SamplingError("sampling: no candidate tokens left after the sampler chain")
    rnd = rng.random()  # drawn even for a single candidate, as llama.cpp keeps its stream aligned
    logits = candidates.logits
    best = logits[0] if candidates.sorted else logits.max()
    if not np.isfinite(best):
        raise SamplingError("sampling: every candidate token has logit -inf (all banned or masked)")
    if candidates.size == 1:
        candidates.probs = np.ones(1, dtype=np.float32)
        return 0
    exps = np.exp(logits - best)
    position = _inverse_cdf(exps, rnd)
    exps *= np.float32(1.0 / float(exps.sum()))
    candidates.probs = exps
    return position


def sample_mirostat(
    candidates: TokenCandidates, tau: float, eta: float, m: int, mu: float, n_vocab: int, rng: StdUniform | np.random.Generator
) -> tuple[int, float]:
    """Mirostat v1: estimate Zipf's exponent from the top ``m`` tokens, keep the top k matching surprise ``mu``.

    Returns the drawn position and the updated ``mu``.
    """
    softmax(candidates, sort=False)
    head = candidates.probs[_descending_positions(candidates.logits, min(m, candidates.size))]
    steps = np.arange(1, head.size, dtype=np.float32)  # i + 1 for i < min(m, size) - 1
    with np.errstate(all="ignore"):  # degenerate heads (p == 0) give NaN/inf, as in C
        t = np.log((steps + 1) / steps)
        b = np.log(head[:-1] / head[1:])
        s_hat = np.float32((t * b).sum(dtype=np.float32) / (t * t).sum(dtype=np.float32))
        epsilon = s_hat - np.float32(1)
        k = (epsilon * np.float32(2.0) ** np.float32(mu) / (1 - np.float32(n_vocab) ** -epsilon)) ** (1 / s_hat)
    k_int = candidates.size if k == np.inf else (int(k) if np.isfinite(k) else 1)
    apply_top_k(candidates, max(k_int, 1))
    softmax(candidates, sort=True)
    position = _inverse_cdf(candidates.probs, rng.random())
    surprise = -math.log2(float(candidates.probs[position]))
    return position, mu - eta * (surprise - tau)


def sample_mirostat_v2(
    candidates: TokenCandidates, tau: float, eta: float, mu: float, rng: StdUniform | np.random.Generator
) -> tuple[int, float]:
    """Mirostat v2: keep tokens whose surprise (-log2 p) is at most ``mu`` (at least the best one).

    Returns the drawn position and the updated ``mu``.
    """
    softmax(candidates, sort=False)
    with np.errstate(divide="ignore"):
        kept = np.flatnonzero(-np.log2(candidates.probs) <= mu)
    if kept.size == 0:
        kept = np.array([int(np.argmax(candidates.logits))])
    candidates.keep(kept[_descending_positions(candidates.logits[kept], kept.size)], is_sorted=True)
    softmax(candidates, sort=True)
    position = _inverse_cdf(candidates.probs, rng.random())
    surprise = -math.log2(float(candidates.probs[position]))
    return position, mu - eta * (surprise - tau)


def pre_sampling_probs(logits: np.ndarray, token: int, n_top: int) -> CandidateProbs:
    """Softmax of the raw logits: the ``n_top`` most likely tokens and ``token``'s probability.

    What llama.cpp's server reports for ``n_probs`` unless ``post_sampling_probs`` is set.
    """
    logits = np.asarray(logits, dtype=np.float32)
    exps = np.exp(logits - logits.max())
    scale = np.float32(1.0 / float(exps.sum()))
    top = _descending_positions(logits, n_top)
    return CandidateProbs(ids=top.astype(np.int32), probs=exps[top] * scale, selected_prob=float(exps[token] * scale))


def dry_breaker_tokens(
    pieces: Sequence[bytes], tokenize: Callable[[str], Sequence[int]], breakers: Sequence[str]
) -> dict[int, list[tuple[int, ...]]]:
    """Token-level DRY breakers from strings (llama.cpp's ``get_overlapping_token_sequences``).

    ``pieces[t]`` is token t's text; ``tokenize`` turns text into ids (no BOS, no special tokens).
    A token containing a breaker breaks alone; a token ending with a breaker's start needs the
    tokenised rest of it (at most 20 tokens) to follow. Breakers are cut to 40 bytes.

    llama.cpp compares each breaker with each piece in C; here every piece is in one byte array
    and a breaker is compared at once with every place its first byte occurs, a byte at a time
    (at most 40 vectorised steps a breaker, whatever the vocabulary's size).
    """
    ends = np.cumsum([len(piece) for piece in pieces], dtype=np.int64)
    total = int(ends[-1]) if ends.size else 0
    # padded so that reading up to 40 bytes past any start stays inside the array
    text = np.frombuffer(b"".join(pieces) + bytes(_DRY_BREAKER_BYTES), dtype=np.uint8)
    result: dict[int, list[tuple[int, ...]]] = {}
    for breaker in breakers:
        needle = breaker.encode("utf-8")[:_DRY_BREAKER_BYTES]
        if not needle:
            continue
        starts = np.flatnonzero(text[:total] == needle[0])
        tokens = np.searchsorted(ends, starts, side="right")
        room = ends[tokens] - starts  # bytes from the start to the end of its piece
        match = np.ones(starts.size, dtype=bool)
        for k in range(1, len(needle)):  # byte k must match wherever the piece reaches it
            match &= (room <= k) | (text[starts + k] == needle[k])
        tokens, room = tokens[match], room[match]
        inside = room >= len(needle)
        breaking_alone = np.unique(tokens[inside])
        for token in breaking_alone.tolist():
            tails = result.setdefault(token, [])
            if () not in tails:
                tails.append(())
        partial = ~inside & ~np.isin(tokens, breaking_alone)  # a token holding the breaker needs no tail
        tail_of: dict[int, tuple[int, ...]] = {}  # matched length -> the tokens of the rest
        for token, matched in zip(tokens[partial].tolist(), room[partial].tolist()):
            if matched not in tail_of:
                rest = needle[matched:].decode("utf-8", errors="replace")
                tail_of[matched] = tuple(tokenize(rest))[:_DRY_TAIL_TOKENS]
            tails = result.setdefault(token, [])
            if tail_of[matched] not in tails:
                tails.append(tail_of[matched])
    return result


# ---------------------------------------------------------------------------------------------
# the chain

# Stages that can leave the best token out; the others keep it (or only change logits).
_MAY_DROP_BEST = ("typ_p", "xtc")
_CHANGES_LOGITS = ("penalties", "dry")


class Sampler:
    """llama.cpp's ``common_sampler``: logit bias, then the stage chain (or mirostat), then a seeded draw.

    Call :meth:`sample` for each row of logits and :meth:`accept` with the token actually emitted.
    ``grammar`` is checked lazily, as llama.cpp does: sample freely, and only if the grammar rejects
    the token, mask every disallowed token and sample again. ``dry_breakers`` are token-level DRY
    sequence breakers (see :func:`dry_breaker_tokens`); ``n_ctx`` resolves ``*_last_n == -1``.
    """

    def __init__(
        self,
        params: SamplingParams,
        n_vocab: int,
        *,
        grammar: Grammar | None = None,
        dry_breakers: Mapping[int, Sequence[Sequence[int]]] | None = None,
        n_ctx: int | None = None,
    ) -> None:
        if n_vocab <= 0:
            raise SamplingError(f"sampling: n_vocab must be positive, got {n_vocab}")
        self.params = params
        self.n_vocab = n_vocab
        self.grammar = grammar
        self._all_ids = np.arange(n_vocab, dtype=np.int32)
        valid_bias = {int(t): float(b) for t, b in params.logit_bias.items() if 0 <= int(t) < n_vocab}
        self._bias_tokens = np.fromiter(valid_bias.keys(), dtype=np.int64, count=len(valid_bias))
        self._bias_values = np.fromiter(valid_bias.values(), dtype=np.float32, count=len(valid_bias))
        self._dry_breakers = {t: [tuple(tail) for tail in tails] for t, tails in (dry_breakers or {}).items()}
        self._penalty_window = self._window(params.repeat_last_n, n_ctx)
        self._dry_window = self._window(params.dry_penalty_last_n, n_ctx)
        self._stages = [name for name in params.samplers if self._is_active(name)]
        self._greedy_argmax = self._greedy_is_argmax()
        self.reset()

    @staticmethod
    def _window(last_n: int, n_ctx: int | None) -> int | None:
        """History length: ``last_n``, or the context size (None: unbounded) for -1."""
        return n_ctx if last_n == -1 else last_n

    def _is_active(self, name: str) -> bool:
        p = self.params
        return {
            "penalties": self._penalty_window != 0
            and not (p.repeat_penalty == 1.0 and p.frequency_penalty == 0.0 and p.presence_penalty == 0.0),
            "dry": p.dry_multiplier != 0.0 and p.dry_base >= 1.0 and self._dry_window != 0,
            "top_n_sigma": p.top_n_sigma > 0.0,
            "top_k": p.top_k > 0,
            "typ_p": p.typical_p < 1.0,
            "top_p": p.top_p < 1.0,
            "min_p": p.min_p > 0.0,
            "xtc": p.xtc_probability > 0.0 and p.xtc_threshold <= 0.5,
            "temperature": True,
        }[name]

    def _greedy_is_argmax(self) -> bool:
        """Whether temperature <= 0 reduces to an argmax of the (biased, penalised) logits."""
        if _is_positive_float32(self.params.temperature):
            return False
        if self.params.mirostat != 0:
            return True
        if "temperature" not in self._stages:
            return False
        before = self._stages[: self._stages.index("temperature")]
        filters = [i for i, name in enumerate(before) if name not in _CHANGES_LOGITS]
        modifiers = [i for i, name in enumerate(before) if name in _CHANGES_LOGITS]
        # Filters keep the best token unless typical/XTC run; a penalty after a filter could lift a filtered-out one.
        return not any(name in _MAY_DROP_BEST for name in before) and not (
            filters and modifiers and max(modifiers) > min(filters)
        )

    def reset(self) -> None:
        """Forget the token history, restart mirostat and reseed (a random seed is drawn anew, as in llama.cpp)."""
        p = self.params
        # llama.cpp's seed is a uint32_t: other values wrap around (-5 is 4294967291)
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if p.seed in _RANDOM_SEEDS else int(p.seed) % 2**32
        self._rng = StdUniform(self.seed)
        self._xtc_rng = StdUniform(self.seed, single=True)  # llama.cpp's XTC draws a float
        self._penalty_history: deque[int] = deque()
        self._penalty_counts: Counter[int] = Counter()
        self._dry_history: deque[int] = deque(maxlen=self._dry_window)
        self.mirostat_mu = 2.0 * p.mirostat_tau
        self._last: tuple[TokenCandidates, int] | None = None

    def accept(self, token: int, *, is_generated: bool = True) -> None:
        """Record a token in the penalty and DRY history; a generated one also advances the grammar.

        llama.cpp's server feeds the prompt tokens with ``is_generated=False`` so that penalties see
        them. Mirostat's ``mu`` is updated when sampling (as in llama.cpp), not here.
        """
        if self.grammar is not None and is_generated:
            self.grammar.accept(token)
        if self._penalty_window != 0:
            if self._penalty_window is not None and len(self._penalty_history) >= self._penalty_window:
                oldest = self._penalty_history.popleft()
                self._penalty_counts[oldest] -= 1
                if not self._penalty_counts[oldest]:
                    del self._penalty_counts[oldest]
            self._penalty_history.append(token)
            self._penalty_counts[token] += 1
        if self._dry_window != 0:
            self._dry_history.append(token)

    def accept_prompt(self, tokens: Sequence[int]) -> None:
        """Feed a prompt to the penalty and DRY history (not the grammar), as llama.cpp feeds every
        prompt token; only the tail the bounded histories can hold is walked."""
        windows = (self._penalty_window, self._dry_window)
        tail = len(tokens) if None in windows else max(windows)
        for token in tokens[len(tokens) - tail:]:
            self.accept(token, is_generated=False)

    def sample(self, logits: np.ndarray) -> int:
        """Pick the next token from one row of logits (float32 ``[n_vocab]``; the array is not modified)."""
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (self.n_vocab,):
            raise SamplingError(f"sampling: logits shape {logits.shape} does not match n_vocab {self.n_vocab}")
        if np.isnan(logits.max()):  # max is NaN when any logit is
            raise NaNLogitsError()
        token = self._run_chain(logits)
        if self.grammar is not None and not self.grammar.allows(token):
            allowed = np.zeros(self.n_vocab, dtype=bool)
            self.grammar.fill_mask(allowed)
            if not allowed.any():
                raise SamplingError("sampling: the grammar allows no token at this point")
            token = self._run_chain(np.where(allowed, logits, np.float32(-np.inf)))
        return token

    @property
    def last_candidates(self) -> CandidateProbs | None:
        """The last sample's ``n_probs`` most probable candidates after the chain (zero-probability ones
        left out, as llama.cpp's server does) and the sampled token's probability; None before sampling."""
        if self._last is None:
            return None
        candidates, position = self._last
        top = _descending_positions(candidates.probs, self.params.n_probs)
        top = top[candidates.probs[top] > 0]
        return CandidateProbs(
            ids=candidates.ids[top].astype(np.int32),
            probs=candidates.probs[top].copy(),
            selected_prob=float(candidates.probs[position]),
        )

    def _run_chain(self, logits: np.ndarray) -> int:
        p = self.params
        candidates = TokenCandidates.from_logits(logits, self._all_ids)
        if self._bias_tokens.size:
            apply_logit_bias(candidates, self._bias_tokens, self._bias_values)
        if self._greedy_argmax:
            return self._argmax(candidates)
        if p.mirostat == 0:
            for name in self._stages:
                self._apply_stage(name, candidates)
            position = sample_dist(candidates, self._rng)
        else:
            apply_temperature(candidates, p.temperature)
            if p.mirostat == 1:
                position, self.mirostat_mu = sample_mirostat(
                    candidates, p.mirostat_tau, p.mirostat_eta, 100, self.mirostat_mu, self.n_vocab, self._rng
                )
            else:
                position, self.mirostat_mu = sample_mirostat_v2(
                    candidates, p.mirostat_tau, p.mirostat_eta, self.mirostat_mu, self._rng
                )
        self._last = (candidates, position)
        return int(candidates.ids[position])

    def _argmax(self, candidates: TokenCandidates) -> int:
        """Greedy: apply only the logit-changing stages before the temperature, then take the argmax."""
        for name in self._stages if self.params.mirostat == 0 else ():
            if name == "temperature":
                break
            if name in _CHANGES_LOGITS:
                self._apply_stage(name, candidates)
        token = int(np.argmax(candidates.logits))
        if not np.isfinite(candidates.logits[token]):
            raise SamplingError("sampling: every candidate token has logit -inf (all banned or masked)")
        if self.params.mirostat != 0:
            # llama.cpp's mirostat sees one token of probability 1: surprise 0.
            self.mirostat_mu -= self.params.mirostat_eta * (0.0 - self.params.mirostat_tau)
        single = TokenCandidates(np.array([token], dtype=np.int32), candidates.logits[token : token + 1])
        single.probs = np.ones(1, dtype=np.float32)
        self._last = (single, 0)
        return token

    def _apply_stage(self, name: str, candidates: TokenCandidates) -> None:
        p = self.params
        if name == "penalties":
            apply_penalties(candidates, self._penalty_counts, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
        elif name == "dry":
            apply_dry(
                candidates, self._dry_history, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                -1 if self._dry_window is None else self._dry_window, self._dry_breakers,
            )
        elif name == "top_n_sigma":
            apply_top_n_sigma(candidates, p.top_n_sigma)
        elif name == "top_k":
            apply_top_k(candidates, p.top_k)
        elif name == "typ_p":
            apply_typical(candidates, p.typical_p, p.min_keep)
        elif name == "top_p":
            apply_top_p(candidates, p.top_p, p.min_keep)
        elif name == "min_p":
            apply_min_p(candidates, p.min_p, p.min_keep)
        elif name == "xtc":
            apply_xtc(candidates, p.xtc_probability, p.xtc_threshold, p.min_keep, self._xtc_rng)
        else:
            apply_temperature(candidates, p.temperature, p.dynatemp_range, p.dynatemp_exponent)
