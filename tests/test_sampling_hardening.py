"""Sampling values that used to end in a 500, a misleading 400 or a stall (issue 15, findings 3
and 7, and NaN logits from a broken model): each now behaves as llama.cpp does or is refused on
SamplingParams with the field named, and the server's 400 carries that field as ``param``."""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import pytest

from llmcore.engine.sampling import (MAX_DRY_BREAKERS, NaNLogitsError, Sampler, SamplingError, SamplingParams,
                                     dry_breaker_tokens)
from llmcore.engine.sequence import Generation, _pieces

LOGITS = np.array([1.0, 3.0, 2.0, 0.5, -1.0], np.float32)


@pytest.mark.parametrize("fields, field", [
    (dict(dynatemp_range=1e308), "dynatemp_range"),
    (dict(temperature=math.inf), "temperature"),
    (dict(top_p=math.nan), "top_p"),
    (dict(repeat_penalty=0), "repeat_penalty"),
    (dict(dry_penalty_last_n=10**30), "dry_penalty_last_n"),
    (dict(logit_bias={1: math.nan}), "logit_bias"),
    (dict(dry_sequence_breakers=tuple(f"b{i}" for i in range(1000))), "dry_sequence_breakers"),
])
def test_values_llama_cpp_cannot_hold_are_refused_naming_the_field(fields, field):
    with pytest.raises(SamplingError) as caught:
        SamplingParams.from_settings(fields)
    assert caught.value.field == field and f"'{field}'" in str(caught.value) and "\n" not in str(caught.value)


def test_seeds_wrap_to_32_bits_as_in_llama_cpp():
    assert Sampler(SamplingParams(seed=-5), 5).seed == 2**32 - 5
    assert Sampler(SamplingParams(seed=2**32 + 7), 5).seed == 7
    wrapped, plain = Sampler(SamplingParams(seed=-5), 5), Sampler(SamplingParams(seed=2**32 - 5), 5)
    assert [wrapped.sample(LOGITS) for _ in range(20)] == [plain.sample(LOGITS) for _ in range(20)]


def test_a_temperature_that_is_zero_as_a_float_is_greedy():
    # llama.cpp keeps the temperature as a float: 1e-300 is 0.0f, greedy
    assert {Sampler(SamplingParams(temperature=1e-300, seed=s), 5).sample(LOGITS) for s in range(10)} == {1}


def test_a_tiny_temperature_that_overflows_the_logits_picks_the_best():
    params = SamplingParams(temperature=1e-40, top_k=0, top_p=1.0, min_p=0.0, seed=3)
    assert {Sampler(params, 5).sample(LOGITS * 1e3) for _ in range(10)} == {1}


def test_dynamic_temperature_extremes_do_not_raise():
    for exponent in (-3e38, 3e38):
        params = SamplingParams(temperature=1.0, dynatemp_range=3e38, dynatemp_exponent=exponent, seed=1)
        assert 0 <= Sampler(params, 5).sample(LOGITS) < 5


def test_a_plus_infinite_bias_forces_its_token():
    for greedy in (True, False):
        params = SamplingParams(temperature=0.0 if greedy else 0.8, logit_bias={4: math.inf}, seed=1)
        assert {Sampler(params, 5).sample(LOGITS) for _ in range(10)} == {4}


def test_a_token_the_grammar_masks_stays_masked_despite_a_plus_infinite_bias():
    class OnlyTwo:
        def allows(self, token: int) -> bool:
            return token == 2

        def fill_mask(self, mask: np.ndarray) -> None:
            mask[2] = True

        def accept(self, token: int) -> None:
            pass

    params = SamplingParams(logit_bias={4: math.inf}, seed=1)
    assert Sampler(params, 5, grammar=OnlyTwo()).sample(LOGITS) == 2


def test_nan_logits_are_a_clear_error_naming_the_position(llm):
    sampler = Sampler(SamplingParams(seed=1), llm.n_vocab)
    generation = Generation(llm.tokenizer, sampler, [1, 2, 3], n_ctx=64)
    logits = np.zeros(llm.n_vocab, np.float32)
    logits[7] = np.nan
    where = r"at position 3 \(token 1 of the reply\)"
    with pytest.raises(NaNLogitsError, match=rf"^sampling: the model produced NaN logits {where}"):
        generation.step(logits)


# -- DRY breakers --------------------------------------------------------------------------------


def test_dry_breakers_scan_is_fast_and_unchanged(llm):
    tokenizer = llm.tokenizer
    pieces = _pieces(tokenizer)
    tokenize = functools.partial(tokenizer.tokenize, add_special=False)
    breakers = ["\n", ":", '"', "*", "b:", "hello world", "é", "a" * 60]
    got = dry_breaker_tokens(pieces, tokenize, breakers)
    # llama.cpp's loop, written out: contained -> (), ends with a start of the breaker -> its tokenised rest
    expected: dict[int, list[tuple[int, ...]]] = {}
    for breaker in breakers:
        needle = breaker.encode()[:40]
        for token, word in enumerate(pieces):
            tails = expected.setdefault(token, [])
            if needle in word:
                tails.append(()) if () not in tails else None
                continue
            for pos in range(len(word)):
                matched = len(word) - pos
                if word[pos:] == needle[:matched]:
                    tail = tuple(tokenize(needle[matched:].decode("utf-8", errors="replace")))[:20]
                    tails.append(tail) if tail not in tails else None
            if not tails:
                del expected[token]
    assert got == expected
    start = time.perf_counter()
    dry_breaker_tokens(pieces, tokenize, [f"breaker {i}:" for i in range(MAX_DRY_BREAKERS)])
    assert time.perf_counter() - start < 5  # the Python loop took ~40 ms a breaker on this vocabulary


# -- the server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm(default_model_path):
    from llmcore.api import LLM

    return LLM(default_model_path, n_ctx=256)


@pytest.fixture(scope="module")
def app_client(llm):
    from fastapi.testclient import TestClient

    from llmcore.server.app import create_app

    with TestClient(create_app(llm)) as client:
        yield client


def post_raw(app_client, body: str):
    """A body with JSON's non-standard NaN / Infinity, as Python's and llama-server's readers take them."""
    return app_client.post("/completion", content=body, headers={"Content-Type": "application/json"})


def complete(app_client, **fields):
    return app_client.post("/completion", json={"prompt": "Hello", "n_predict": 2} | fields)


@pytest.mark.parametrize("fields, param", [
    (dict(dynatemp_range=1e308), "dynatemp_range"),
    (dict(repeat_penalty=0), "repeat_penalty"),
    (dict(dry_multiplier=0.8, dry_sequence_breakers=[f"b{i}" for i in range(1000)]), "dry_sequence_breakers"),
])
def test_server_400s_name_the_sampling_field(app_client, fields, param):
    start = time.perf_counter()
    response = complete(app_client, **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert time.perf_counter() - start < 2


def test_server_nan_biases_are_a_400(app_client):
    response = post_raw(app_client, '{"prompt": "Hello", "n_predict": 2, "logit_bias": {"5": NaN}}')
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "logit_bias"


@pytest.mark.parametrize("fields", [dict(seed=-5), dict(temperature=1e-300), dict(logit_bias={"²": -5.0})])
def test_server_takes_what_llama_server_takes(app_client, fields):
    response = complete(app_client, **fields)
    assert response.status_code == 200, (fields, response.text)


def test_server_plus_infinity_bias_forces_the_token(app_client, llm):
    forced = llm.tokenize(" Paris", add_special=False)[0]
    response = post_raw(app_client, '{"prompt": "Hello", "n_predict": 2, "logit_bias": {"%d": Infinity}}' % forced)
    assert response.status_code == 200, response.text
    assert response.json()["content"] == " Paris Paris"
