"""Grammars on real vocabularies: the Qwen2 test vocabulary (150k tokens, multi-byte tokens) and the
default model's, driven through ``llmcore.engine.sampling.Sampler`` the way generation uses them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from llmcore.grammar import Grammar
from llmcore.engine.sampling import Sampler, SamplingParams
from llmcore.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
JSON_GBNF = (FIXTURES / "grammar" / "llama_grammars" / "json.gbnf").read_text(encoding="utf-8")
DOCUMENT = json.dumps({"name": "Ada", "born": 1815, "tags": ["math", "poetry"], "ratio": -0.5e2,
                       "notes": "Unicode: é → ✓", "nested": {"ok": True, "none": None}}, indent=1)


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    target = tmp_path_factory.mktemp("vocab") / "ggml-vocab-qwen2.gguf"
    with gzip.open(FIXTURES / "vocab" / "ggml-vocab-qwen2.gguf.gz") as src:
        target.write_bytes(src.read())
    return Tokenizer.from_gguf(target)


@pytest.fixture(scope="module")
def smollm2(default_model_path: Path) -> Tokenizer:
    return Tokenizer.from_gguf(default_model_path)


def test_document_tokens_allowed_and_end_only_at_the_end(qwen2: Tokenizer) -> None:
    matcher = Grammar.from_gbnf(JSON_GBNF).matcher(qwen2)
    eog = sorted(qwen2.eog_ids)
    mask = np.zeros(qwen2.n_vocab, dtype=bool)
    for token in qwen2.tokenize(DOCUMENT, add_special=False):
        mask[:] = False
        matcher.fill_mask(mask)
        assert mask[token] and matcher.allows(token), qwen2.token_to_piece(token)
        assert not mask[eog].any()
        matcher.accept(token)
    mask[:] = False
    matcher.fill_mask(mask)
    assert mask[eog].all() and matcher.allows(eog[0])
    # every allowed token keeps the text a prefix of some JSON object: spot-check a few pieces
    allowed = {qwen2.token_to_piece(int(t)) for t in np.flatnonzero(mask)}
    assert b" " in allowed and b"}" not in allowed and b"<|im_start|>" not in allowed


def test_mask_matches_lazy_check(qwen2: Tokenizer) -> None:
    matcher = Grammar.from_json_schema({"type": "object", "properties": {"id": {"type": "integer"}},
                                        "required": ["id"]}).matcher(qwen2)
    for token in qwen2.tokenize('{"id": 4', add_special=False):
        matcher.accept(token)
    mask = np.zeros(qwen2.n_vocab, dtype=bool)
    matcher.fill_mask(mask)
    rng = np.random.default_rng(0)
    probe = np.concatenate([np.flatnonzero(mask)[:200], rng.integers(0, qwen2.n_vocab, 300)])
    assert all(matcher.allows(int(t)) == mask[t] for t in probe)
    assert mask[qwen2.tokenize("2", add_special=False)[0]] and mask[qwen2.tokenize("}", add_special=False)[0]]


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        "kind": {"anyOf": [{"const": "x"}, {"type": "null"}]},
    },
    "required": ["name", "age", "score"],
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampler_with_random_logits_produces_valid_json(smollm2: Tokenizer, seed: int) -> None:
    """Random logits stand in for a model: whatever they prefer, the output is valid."""
    grammar = Grammar.from_json_schema(SCHEMA)
    n_vocab = smollm2.n_vocab + 5  # the model's logits may be longer than the vocabulary
    sampler = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed), n_vocab,
                      grammar=grammar.matcher(smollm2))
    rng = np.random.default_rng(seed)
    tokens: list[int] = []
    for _ in range(400):
        logits = rng.normal(0, 3, n_vocab).astype(np.float32)
        logits[sorted(smollm2.eog_ids)] += 4  # lean towards ending, as a trained model would
        token = sampler.sample(logits)
        sampler.accept(token)
        if smollm2.is_eog(token):
            break
        tokens.append(token)
    else:
        pytest.fail("generation did not end")
    value = json.loads(smollm2.detokenize(tokens))
    jsonschema.validate(value, SCHEMA)
