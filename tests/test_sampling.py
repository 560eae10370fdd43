"""Sampler chain against llama.cpp: test-sampling.cpp's cases ported as data, llama.cpp-made chain
goldens (tests/fixtures/sampling/, made with llama-cpp-python's samplers), hand-computed mirostat,
and statistical checks of the seeded draw."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from llmcore.engine.sampling import (
    Sampler,
    SamplingError,
    SamplingParams,
    TokenCandidates,
    apply_dry,
    apply_min_p,
    apply_penalties,
    apply_temperature,
    apply_top_k,
    apply_top_n_sigma,
    apply_top_p,
    apply_typical,
    apply_xtc,
    dry_breaker_tokens,
    pre_sampling_probs,
    sample_dist,
)

GOLDENS = json.loads((Path(__file__).parent / "fixtures" / "sampling" / "chain_goldens.json").read_text())
P = [0.1, 0.2, 0.3, 0.4]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check(candidates: TokenCandidates, expected: list[float]) -> None:
    """test-sampling.cpp's sampler_tester::check: same size, same probabilities in candidate order."""
    assert candidates.size == len(expected)
    np.testing.assert_allclose(candidates.probs, expected, atol=1e-5)


# ---- tests/test-sampling.cpp, case by case ------------------------------------------------------


@pytest.mark.parametrize(
    "temp, dyn_range, expected",
    [(1.0, 0.0, P), (0.0, 0.0, [0, 0, 0, 1.0])],
)
def test_temp(temp, dyn_range, expected):
    c = TokenCandidates.from_probs(P)
    apply_temperature(c, temp, dyn_range, 1.0)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize(
    "k, expected",
    [(1, [1.0]), (3, [0.44444, 0.33333, 0.22222]), (4, [0.4, 0.3, 0.2, 0.1]), (0, P)],
)
def test_top_k(k, expected):
    c = TokenCandidates.from_probs(P)
    apply_top_k(c, k)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize(
    "p, expected",
    [(0.0, [1.0]), (0.7, [0.571429, 0.428571]), (0.8, [0.44444, 0.33333, 0.22222]), (1.0, P)],
)
def test_top_p(p, expected):
    c = TokenCandidates.from_probs(P)
    apply_top_p(c, p, 0)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.00, P),
        (0.24, P),
        (0.26, [0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]),
        (0.49, [0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]),
        (0.51, [0.3 / 0.7, 0.4 / 0.7]),
        (0.74, [0.3 / 0.7, 0.4 / 0.7]),
        (0.76, [1.0]),
        (1.00, [1.0]),
        (1.05, [1.0]),
    ],
)
def test_min_p(p, expected):
    c = TokenCandidates.from_probs(P)
    apply_min_p(c, p, 0)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize(
    "threshold, expected",
    [(0.09, [0.1]), (0.19, [0.2, 0.1]), (0.29, [0.3, 0.2, 0.1]), (0.39, [0.4, 0.3, 0.2, 0.1])],
)
def test_xtc(threshold, expected):
    # llama.cpp uses probability 0.99 with its seeded mt19937; 1.0 makes the roll always pass here.
    c = TokenCandidates.from_probs([0.4, 0.3, 0.2, 0.1])
    apply_xtc(c, 1.0, threshold, 0, rng())
    check(c, expected)


def test_xtc_roll_frequency_matches_probability():
    generator, fired = rng(5), 0
    for _ in range(2000):
        c = TokenCandidates.from_probs([0.4, 0.3, 0.2, 0.1])
        apply_xtc(c, 0.3, 0.09, 0, generator)
        fired += c.size == 1
    assert abs(fired / 2000 - 0.3) < 0.04


@pytest.mark.parametrize(
    "probs, expected",
    [([0.97, 0.01, 0.01, 0.01], [0.97]), ([0.4, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2])],
)
def test_typical(probs, expected):
    c = TokenCandidates.from_probs(probs)
    apply_typical(c, 0.5, 0)
    check(c, expected)


@pytest.mark.parametrize(
    "history, expected, repeat, freq, presence",
    [
        ([0], [0, 0.25, 0.25, 0.25, 0.25], 50.0, 0.0, 0.0),
        ([0, 1, 2], [0, 0, 0, 0.5, 0.5], 50.0, 0.0, 0.0),
        ([0, 1, 2, 0, 0], [0, 0, 0, 0.5, 0.5], 50.0, 0.0, 0.0),
        ([0], [0.000011, 0.249997, 0.249997, 0.249997, 0.249997], 1.0, 5.0, 5.0),
        ([0, 1, 2], [0.000023, 0.000023, 0.000023, 0.499966, 0.499966], 1.0, 5.0, 5.0),
        ([0, 1, 2, 0, 0], [0.000000, 0.000023, 0.000023, 0.499977, 0.499977], 1.0, 5.0, 5.0),
    ],
)
def test_penalties(history, expected, repeat, freq, presence):
    c = TokenCandidates.from_probs([0.2] * 5)
    counts: dict[int, int] = {}
    for token in history:  # penalty_last_n == len(history): everything counts
        counts[token] = counts.get(token, 0) + 1
    apply_penalties(c, counts, repeat, freq, presence)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize(
    "probs, history, expected, multiplier, base, allowed, last_n, breakers",
    [
        ([0.25] * 4, [0, 1], [0.25] * 4, 1.0, 1.1, 2, 4, []),
        ([0.25] * 4, [0, 1, 2, 0, 1], [0.296923, 0.296923, 0.109232, 0.296923], 1.0, 1.1, 2, 5, []),
        ([0.2] * 5, [0, 1, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 2, 6, [[3]]),
        ([0.2] * 5, [0, 1, 2, 0, 1], [0.241818, 0.241818, 0.032727, 0.241818, 0.241818], 2.0, 1.1, 2, 5, []),
        ([0.2] * 5, [0, 1, 2, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 4, 7, []),
    ],
)
def test_dry(probs, history, expected, multiplier, base, allowed, last_n, breakers):
    c = TokenCandidates.from_probs(probs)
    heads: dict[int, list[tuple[int, ...]]] = {}
    for breaker in breakers:
        heads.setdefault(breaker[0], []).append(tuple(breaker[1:]))
    apply_dry(c, history, multiplier, base, allowed, last_n, heads)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize(
    "n, expected",
    [(1.0, [0.0, 0.0, 0.428571, 0.571429]), (0.0, P), (3.0, P)],
)
def test_top_n_sigma(n, expected):
    c = TokenCandidates.from_probs(P)
    apply_top_n_sigma(c, n)
    sample_dist(c, rng())
    check(c, expected)


@pytest.mark.parametrize("n, k", [(151936, 40), (151936, 5000), (20000, 300), (3000, 40)])
def test_top_k_ranks_like_a_stable_full_sort(n, k):
    """The partial selection keeps the same tokens, in the same order, as a full sort (ties: lower id first)."""
    generator = rng(n + k)
    for logits in (
        np.round(generator.standard_normal(n) * 2, 1).astype(np.float32),  # many ties
        np.where(generator.random(n) < 0.5, -np.inf, generator.standard_normal(n)).astype(np.float32),
        np.zeros(n, np.float32),
        np.sort(generator.standard_normal(n)).astype(np.float32)[::-1].copy(),  # defeats the subsample guess
    ):
        c = TokenCandidates.from_logits(logits)
        apply_top_k(c, k)
        assert c.ids.tolist() == np.argsort(-logits, kind="stable")[:k].tolist()


def test_dist_draws_once_even_for_a_single_candidate():
    """test_dist_singleton_rng: a one-token draw keeps the random stream aligned."""
    single, control = rng(4242), rng(4242)
    sample_dist(TokenCandidates.from_logits(np.zeros(1, np.float32)), single)
    sample_dist(TokenCandidates.from_logits(np.zeros(2, np.float32)), control)
    for _ in range(4):
        a = sample_dist(TokenCandidates.from_logits(np.zeros(256, np.float32)), single)
        b = sample_dist(TokenCandidates.from_logits(np.zeros(256, np.float32)), control)
        assert a == b


QUEUE_CASES = [
    ("k", 10000, 1.0, 1.0), ("k", 1, 1.0, 1.0), ("p", 10000, 1.0, 1.0), ("p", 10000, 0.0, 1.0),
    ("m", 10000, 1.0, 1.0), ("m", 10000, 1.0, 1e-12), ("k", 100, 1.0, 1.0), ("p", 10000, 0.0003, 1.0),
    ("p", 10000, 0.8, 1.0), ("m", 10000, 1.0, 9997.9 / 9999.0), ("m", 10000, 1.0, 0.1),
    ("kp", 100, 0.8, 0.1), ("km", 100, 0.8, 0.1), ("pk", 100, 0.8, 0.1), ("pm", 100, 0.8, 0.1),
    ("mk", 100, 0.8, 0.1), ("mp", 100, 0.8, 9997.9 / 9999.0), ("mp", 100, 0.8, 0.1),
    ("kpm", 100, 0.8, 0.1), ("kmp", 100, 0.8, 0.1), ("pkm", 100, 0.8, 0.1), ("pmk", 100, 0.8, 0.1),
    ("mkp", 100, 0.8, 0.1), ("mpk", 100, 0.8, 0.1),
]


@pytest.mark.parametrize("sequence, top_k, top_p, min_p", QUEUE_CASES)
def test_sampler_queue(sequence, top_k, top_p, min_p):
    """test_sampler_queue: logits log(id) over 10000 tokens, expected sizes from integer arithmetic."""
    n_vocab = 10000
    with np.errstate(divide="ignore"):
        c = TokenCandidates.from_logits(np.log(np.arange(n_vocab, dtype=np.float32)))
    min_token_id, max_token_id = 0, n_vocab - 1
    top_p32, min_p32 = np.float32(top_p), np.float32(min_p)
    for stage in sequence:
        if stage == "k":
            apply_top_k(c, top_k)
        elif stage == "p":
            apply_top_p(c, float(top_p32), 1)
        else:
            apply_min_p(c, float(min_p32), 1)
        sample_dist(c, rng())
        size = c.size
        if stage == "k":
            expected_size = min(size, top_k)
            min_token_id = max(min_token_id, n_vocab - top_k)
            assert size == expected_size
            assert c.ids[0] == max_token_id and c.ids[expected_size - 1] == min_token_id
        elif stage == "p":
            divisor = n_vocab * (n_vocab - 1) // 2 - min_token_id * (min_token_id - 1) // 2
            target = math.ceil(np.float32(top_p32 * np.float32(divisor)))
            min_token_id, expected_size, cumsum = n_vocab, 0, 0
            while True:
                min_token_id -= 1
                expected_size += 1
                cumsum += min_token_id
                if cumsum >= target:
                    break
            if min_token_id == 1:
                min_token_id -= 1
                expected_size += 1
            assert size == expected_size
            assert not c.sorted or (c.ids[0] == max_token_id and c.ids[expected_size - 1] == min_token_id)
        else:
            expected_size = min(max(math.ceil(np.float32(1.0 - min_p32) * n_vocab), 1), size)
            min_token_id = max(int(math.floor(np.float32(min_p32 * n_vocab))), 1, n_vocab - size)
            min_token_id = min(min_token_id, n_vocab - 1)
            assert size == expected_size
            assert not c.sorted or (c.ids[0] == max_token_id and c.ids[expected_size - 1] == min_token_id)


# ---- whole chain against llama.cpp (goldens made by make_goldens.py) -----------------------------


def golden_logits(case) -> np.ndarray:
    logits = (rng(case["logits_seed"]).standard_normal(case["n_vocab"]) * case["scale"]).astype(np.float32)
    assert math.isclose(float(logits.astype(np.float64).sum()), case["logits_sum"], rel_tol=0, abs_tol=1e-6)
    return logits


@pytest.mark.parametrize("case", GOLDENS["cases"], ids=lambda case: case["name"])
def test_chain_matches_llama_cpp(case):
    logits = golden_logits(case)
    fields = dict(case["params"])
    fields["logit_bias"] = {int(t): float(b) for t, b in case["logit_bias"].items()}
    params = SamplingParams(seed=1234, n_probs=case["n_vocab"], **fields)
    sampler = Sampler(params, case["n_vocab"])
    for token in case["history"]:
        sampler.accept(token)
    token = sampler.sample(logits)
    kept = sampler.last_candidates
    order = np.argsort(kept.ids)
    assert kept.ids[order].tolist() == case["ids"]
    np.testing.assert_allclose(kept.probs[order], case["probs"], rtol=1e-4, atol=1e-6)
    assert token in case["ids"]


# ---- Sampler behaviour ----------------------------------------------------------------------------


def test_defaults_are_llama_cpp_defaults():
    """common/common.h common_params_sampling defaults and default sampler order."""
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.typical_p) == (0.8, 40, 0.95, 0.05, 1.0)
    assert (p.repeat_penalty, p.repeat_last_n, p.frequency_penalty, p.presence_penalty) == (1.0, 64, 0.0, 0.0)
    assert (p.mirostat, p.mirostat_tau, p.mirostat_eta, p.min_keep, p.n_probs) == (0, 5.0, 0.1, 0, 0)
    assert (p.xtc_probability, p.xtc_threshold, p.top_n_sigma) == (0.0, 0.1, -1.0)
    assert (p.dry_multiplier, p.dry_base, p.dry_allowed_length, p.dry_penalty_last_n) == (0.0, 1.75, 2, 64)
    assert (p.dynatemp_range, p.dynatemp_exponent, p.seed, p.logit_bias) == (0.0, 1.0, None, {})
    assert p.dry_sequence_breakers == ("\n", ":", '"', "*")
    assert p.samplers == ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")


def sequence(sampler: Sampler, rows: np.ndarray) -> list[int]:
    out = []
    for row in rows:
        out.append(sampler.sample(row))
        sampler.accept(out[-1])
    return out


def test_seeded_runs_are_reproducible():
    rows = (rng(3).standard_normal((40, 500)) * 2).astype(np.float32)
    params = SamplingParams(seed=42, temperature=1.5, top_k=0, top_p=0.99, min_p=0.0, repeat_penalty=1.1)
    first = sequence(Sampler(params, 500), rows)
    assert sequence(Sampler(params, 500), rows) == first
    again = Sampler(params, 500)
    sequence(again, rows[:10])
    again.reset()
    assert sequence(again, rows) == first
    assert sequence(Sampler(SamplingParams(**{**params.__dict__, "seed": 43}), 500), rows) != first


def test_random_seed_is_reported_and_differs():
    seeds = {Sampler(SamplingParams(seed=s), 10).seed for s in (None, -1, 0xFFFFFFFF, None)}
    assert len(seeds) == 4 and all(0 <= s < 2**32 for s in seeds)


def test_sampling_does_not_modify_logits():
    logits = (rng(1).standard_normal(1000) * 3).astype(np.float32)
    before = logits.copy()
    sampler = Sampler(SamplingParams(seed=1, repeat_penalty=1.3, logit_bias={5: 3.0}, top_n_sigma=1.0), 1000)
    for token in (1, 2, 5):
        sampler.accept(token)
    sampler.sample(logits)
    Sampler(SamplingParams(temperature=0, logit_bias={5: 100.0}), 1000).sample(logits)
    np.testing.assert_array_equal(logits, before)


def test_greedy_is_argmax_first_on_ties():
    logits = np.array([0.5, 3.0, -1.0, 3.0, 2.9], np.float32)
    sampler = Sampler(SamplingParams(temperature=0.0, seed=1), 5)
    assert [sampler.sample(logits) for _ in range(5)] == [1] * 5
    assert sampler.last_candidates.selected_prob == 1.0
    assert Sampler(SamplingParams(temperature=-1.0, mirostat=2), 5).sample(logits) == 1


def test_greedy_applies_bias_and_penalties():
    logits = np.array([0.5, 3.0, -1.0, 2.8, 2.0], np.float32)
    assert Sampler(SamplingParams(temperature=0, logit_bias={4: 1.5}), 5).sample(logits) == 4
    sampler = Sampler(SamplingParams(temperature=0, repeat_penalty=1.2, repeat_last_n=2), 5)
    sampler.accept(1)  # 3.0 / 1.2 = 2.5 < 2.8
    assert sampler.sample(logits) == 3
    sampler.accept(0)
    sampler.accept(0)  # token 1 has left the 2-token window
    assert sampler.sample(logits) == 1


def test_greedy_with_typical_takes_argmax_of_the_typical_set():
    # probs 0.4, 0.2, 0.2, 0.2: typical(0.5) keeps the three 0.2 tokens; greedy picks the first of them.
    logits = np.log(np.array([0.4, 0.2, 0.2, 0.2], np.float32))
    assert Sampler(SamplingParams(temperature=0, typical_p=0.5, top_k=0), 4).sample(logits) == 1


def test_logit_bias_bans_and_boosts():
    logits = np.zeros(50, np.float32)
    sampler = Sampler(SamplingParams(seed=7, top_k=0, top_p=1.0, min_p=0.0, logit_bias={3: -math.inf, 999: 5.0}), 50)
    assert 3 not in {sampler.sample(logits) for _ in range(500)}
    boosted = Sampler(SamplingParams(seed=7, logit_bias={17: 20.0}), 50)
    assert {boosted.sample(logits) for _ in range(50)} == {17}


def reference_default_chain(logits: np.ndarray) -> np.ndarray:
    """llama.cpp's default chain written out with full sorts: top_k 40, top_p 0.95, min_p 0.05, temp 0.8."""
    order = np.argsort(-logits, kind="stable")[:40]
    p = np.exp(logits[order] - logits[order[0]])
    p /= p.sum()
    order = order[: int(np.argmax(np.cumsum(p) >= 0.95)) + 1]
    order = order[logits[order] >= logits[order[0]] + math.log(0.05)]
    p = np.exp((logits[order] - logits[order[0]]) / 0.8)
    dist = np.zeros(logits.size)
    dist[order] = p / p.sum()
    return dist


def test_draw_frequencies_match_the_filtered_distribution():
    logits = (rng(11).standard_normal(300) * 1.5).astype(np.float32)
    expected = reference_default_chain(logits)
    sampler, draws = Sampler(SamplingParams(seed=99), 300), 20000
    counts = np.bincount([sampler.sample(logits) for _ in range(draws)], minlength=300)
    assert set(np.flatnonzero(counts)) <= set(np.flatnonzero(expected))
    assert 0.5 * np.abs(counts / draws - expected).sum() < 0.02  # total variation distance
    kept = np.flatnonzero(expected > 0.01)
    stat = (((counts[kept] - draws * expected[kept]) ** 2) / (draws * expected[kept])).sum()
    assert stat < 3 * kept.size  # chi-square with len(kept)-1 dof stays far below this


def test_n_probs_reports_top_candidates_after_the_chain():
    logits = (rng(2).standard_normal(300) * 2).astype(np.float32)
    sampler = Sampler(SamplingParams(seed=5, n_probs=3), 300)
    token = sampler.sample(logits)
    kept = sampler.last_candidates
    expected = reference_default_chain(logits)
    top = np.argsort(-expected, kind="stable")[:3]
    assert kept.ids.tolist() == top.tolist()
    np.testing.assert_allclose(kept.probs, expected[top], rtol=1e-5)
    assert kept.selected_prob == pytest.approx(expected[token], rel=1e-5)


def test_pre_sampling_probs_is_softmax_of_raw_logits():
    logits = (rng(8).standard_normal(1000) * 2).astype(np.float32)
    full = np.exp(logits.astype(np.float64) - logits.max())
    full /= full.sum()
    got = pre_sampling_probs(logits, token=17, n_top=5)
    assert got.ids.tolist() == np.argsort(-full, kind="stable")[:5].tolist()
    np.testing.assert_allclose(got.probs, full[got.ids], rtol=1e-5)
    assert got.selected_prob == pytest.approx(full[17], rel=1e-5)


# ---- mirostat, by hand from llama.cpp's formulas --------------------------------------------------


def test_mirostat_v2_truncates_by_surprise_and_updates_mu():
    probs = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625], np.float32)
    tau, eta = 1.5, 0.1  # mu starts at 3: keep tokens with -log2(p) <= 3, i.e. the first three
    sampler = Sampler(SamplingParams(mirostat=2, mirostat_tau=tau, mirostat_eta=eta, temperature=1.0, seed=3,
                                     n_probs=5), 5)
    token = sampler.sample(np.log(probs))
    kept = sampler.last_candidates
    assert kept.ids.tolist() == [0, 1, 2]
    np.testing.assert_allclose(kept.probs, [4 / 7, 2 / 7, 1 / 7], rtol=1e-6)
    assert sampler.mirostat_mu == pytest.approx(2 * tau - eta * (-math.log2(kept.probs[token]) - tau), rel=1e-6)


def test_mirostat_v1_keeps_the_estimated_top_k():
    # Zipf-like probabilities p_i ~ 1/(i+1)^s give s_hat == s exactly.
    s, n_vocab, tau, eta = 1.2, 200, 3.0, 0.1
    probs = (1.0 / np.arange(1, n_vocab + 1) ** s).astype(np.float32)
    sampler = Sampler(SamplingParams(mirostat=1, mirostat_tau=tau, mirostat_eta=eta, temperature=1.0, seed=4,
                                     n_probs=n_vocab), n_vocab)
    token = sampler.sample(np.log(probs))
    eps = s - 1
    k = int((eps * 2 ** (2 * tau) / (1 - n_vocab ** -eps)) ** (1 / s))
    kept = sampler.last_candidates
    assert kept.ids.tolist() == list(range(k))
    np.testing.assert_allclose(kept.probs, probs[:k] / probs[:k].sum(), rtol=1e-5)
    assert sampler.mirostat_mu == pytest.approx(2 * tau - eta * (-math.log2(kept.probs[token]) - tau), rel=1e-5)


# ---- grammar (lazy check), DRY breakers, errors, speed -----------------------------------------


class FakeGrammar:
    def __init__(self, allowed: set[int]):
        self.allowed, self.masks, self.accepted = allowed, 0, []

    def allows(self, token: int) -> bool:
        return token in self.allowed

    def fill_mask(self, mask: np.ndarray) -> None:
        self.masks += 1
        mask[list(self.allowed)] = True

    def accept(self, token: int) -> None:
        self.accepted.append(token)


def test_grammar_is_checked_lazily():
    logits = np.array([5.0, 4.0, 0.0, -1.0, -2.0], np.float32)
    grammar = FakeGrammar({0, 3})
    sampler = Sampler(SamplingParams(temperature=0), 5, grammar=grammar)
    assert sampler.sample(logits) == 0 and grammar.masks == 0  # allowed: no mask built
    grammar.allowed = {3, 4}
    assert sampler.sample(logits) == 3 and grammar.masks == 1
    sampler.accept(3)
    sampler.accept(4, is_generated=False)  # a prompt token: penalties see it, the grammar does not
    assert grammar.accepted == [3]
    random_sampler = Sampler(SamplingParams(seed=1, top_k=2), 5, grammar=FakeGrammar({2, 4}))
    assert {random_sampler.sample(logits) for _ in range(50)} == {2, 4}  # resampled from the allowed pair
    with pytest.raises(SamplingError):
        Sampler(SamplingParams(), 5, grammar=FakeGrammar(set())).sample(logits)


def test_dry_sequence_breakers_from_pieces():
    pieces = [b"a", b"x\n", b"b:", b" *", b"\"q", b"ab"]
    tokenize = {"\n": [1], ":": [2]}.__getitem__
    got = dry_breaker_tokens(pieces, tokenize, ["\n", ":", "*", "b:"])
    # contains a breaker -> breaks alone; "ab" ends with "b", the start of "b:" -> needs ":" to follow.
    assert got == {1: [()], 2: [()], 3: [()], 5: [(2,)]}


def test_dry_in_the_chain_penalises_the_repeating_continuation():
    params = SamplingParams(temperature=0, dry_multiplier=5.0, dry_base=1.75, dry_allowed_length=2)
    sampler = Sampler(params, 6)
    for token in (0, 1, 2, 3, 0, 1, 2):  # "0 1 2" repeats; 3 would extend it
        sampler.accept(token)
    assert sampler.sample(np.array([0, 0, 0, 1.0, 0.5, 0], np.float32)) == 4


@pytest.mark.parametrize(
    "fields",
    [dict(mirostat=3), dict(samplers=("top_k", "nucleus")), dict(min_keep=-1), dict(repeat_last_n=-2)],
)
def test_bad_params_raise(fields):
    with pytest.raises(SamplingError):
        SamplingParams(**fields)


def test_bad_logits_shape_raises():
    with pytest.raises(SamplingError):
        Sampler(SamplingParams(), 10).sample(np.zeros(11, np.float32))


@pytest.mark.slow  # a timing: a loaded machine misses it
@pytest.mark.parametrize("n_vocab", [49152, 151936])
def test_default_sampling_is_fast(n_vocab):
    logits = (rng(0).standard_normal(n_vocab) * 3).astype(np.float32)
    for params, budget_s in ((SamplingParams(seed=1), 1e-3), (SamplingParams(temperature=0), 1e-4)):
        sampler = Sampler(params, n_vocab)
        timings = []
        for _ in range(30):
            start = time.perf_counter()
            sampler.sample(logits)
            timings.append(time.perf_counter() - start)
        assert np.median(timings) < budget_s
