"""Tokenizers against llama.cpp on its vocab-only GGUF files.

Two oracles: llama.cpp's own test vectors (``ggml-vocab-*.gguf.inp/.out``, as test-tokenizer-0 checks
them) and randomized goldens made with llama.cpp through llama-cpp-python by
``scripts/make_tokenizer_goldens.py`` (tokenize with/without special handling, detokenize with its
flags, token_to_piece, special ids). The vocab GGUFs are stored gzipped in tests/fixtures/vocab.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from llmcore.tokenizer import Tokenizer

VOCAB_DIR = Path(__file__).parent / "fixtures" / "vocab"
ORACLE_DIR = VOCAB_DIR / "oracle"
SEPARATOR = "\n__ggml_vocab_test__\n"

VECTOR_VOCABS = sorted(p.name.removesuffix(".gguf.inp") for p in VOCAB_DIR.glob("*.gguf.inp"))
ORACLE_VOCABS = sorted(p.stem for p in ORACLE_DIR.glob("ggml-vocab-*.json"))


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory: pytest.TempPathFactory):
    """name -> path of the decompressed vocab GGUF (decompressed once)."""
    folder = tmp_path_factory.mktemp("vocab")

    def path(name: str) -> Path:
        target = folder / f"{name}.gguf"
        if not target.exists():
            with gzip.open(VOCAB_DIR / f"{name}.gguf.gz") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return target

    return path


@pytest.fixture(scope="module")
def tokenizers(vocab_file):
    """name -> Tokenizer, each loaded once."""
    cache: dict[str, Tokenizer] = {}

    def load(name: str) -> Tokenizer:
        if name not in cache:
            cache[name] = Tokenizer.from_gguf(vocab_file(name))
        return cache[name]

    return load


def test_fixture_lists_are_complete():
    assert len(VECTOR_VOCABS) == 15  # the nine of ../shared plus llama.cpp's other vocabs with vectors
    assert len(ORACLE_VOCABS) == 21  # + aquila, baichuan, gpt-neox, nomic-bert-moe (UGM), a small RWKV one and RWKV "world"


@pytest.mark.parametrize("name", VECTOR_VOCABS)
def test_llama_cpp_test_vectors(name: str, tokenizers):
    tokenizer = tokenizers(name)
    cases = (VOCAB_DIR / f"{name}.gguf.inp").read_bytes().decode("utf-8").split(SEPARATOR)[:-1]
    expected = (VOCAB_DIR / f"{name}.gguf.out").read_bytes().decode("utf-8").split("\n")
    assert len(cases) <= len(expected)
    mismatches = []
    for text, line in zip(cases, expected):
        got = tokenizer.tokenize(text, add_special=False, parse_special=False)
        if got != [int(x) for x in line.split()]:
            mismatches.append((text, got, line))
    assert not mismatches, f"{len(mismatches)}/{len(cases)} cases differ, first: {mismatches[0]!r}"


def _load_golden(name: str) -> dict:
    return json.loads((ORACLE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _check_random_strings(tokenizer: Tokenizer, golden: dict) -> None:
    failures = []
    for case in golden["cases"]:
        text = case["text"]
        checks = {
            "ids": (tokenizer.tokenize(text, add_special=False, parse_special=False), case["ids"]),
            "ids_special": (tokenizer.tokenize(text, add_special=True, parse_special=True), case["ids_special"]),
            "detok": (tokenizer.detokenize_bytes(case["ids"]).hex(), case["detok"]),
            "detok_special": (tokenizer.detokenize_bytes(case["ids_special"], remove_special=True,
                                                         unparse_special=True).hex(), case["detok_special"]),
        }
        failures += [(kind, text, got, want) for kind, (got, want) in checks.items() if got != want]
    assert not failures, f"{len(failures)} differences, first: {failures[0]!r}"


def _check_id_sequences(tokenizer: Tokenizer, golden: dict) -> None:
    failures = []
    for seq in golden["id_sequences"]:
        ids = seq["ids"]
        checks = {
            "pieces": ([tokenizer.token_to_piece(i, special=True).hex() for i in ids], seq["pieces"]),
            "pieces_plain": ([tokenizer.token_to_piece(i, special=False).hex() for i in ids], seq["pieces_plain"]),
            "detok": (tokenizer.detokenize_bytes(ids).hex(), seq["detok"]),
            "detok_special": (tokenizer.detokenize_bytes(ids, unparse_special=True).hex(), seq["detok_special"]),
            "detok_removed": (tokenizer.detokenize_bytes(ids, remove_special=True).hex(), seq["detok_removed"]),
        }
        failures += [(kind, ids, got, want) for kind, (got, want) in checks.items() if got != want]
    assert not failures, f"{len(failures)} differences, first: {failures[0]!r}"


def _check_facts(tokenizer: Tokenizer, facts: dict) -> None:
    assert tokenizer.n_vocab == facts["n_vocab"]
    assert (tokenizer.bos_id, tokenizer.eos_id) == (facts["bos_id"], facts["eos_id"])
    assert (tokenizer.add_bos, tokenizer.add_eos) == (facts["add_bos"], facts["add_eos"])
    assert sorted(tokenizer.eog_ids) == facts["eog_ids"]
    assert [i for i in range(tokenizer.n_vocab) if tokenizer.is_eog(i)] == facts["eog_ids"]
    # With several EOT-looking tokens llama.cpp picks the first in its hash map's order; ours is also one of them.
    assert (tokenizer.eot_id is None) == (facts["eot_id"] is None)
    if tokenizer.eot_id is not None:
        assert tokenizer.eot_id in tokenizer.eog_ids


@pytest.mark.parametrize("name", ORACLE_VOCABS)
def test_random_strings_match_llama_cpp(name: str, tokenizers):
    _check_random_strings(tokenizers(name), _load_golden(name))


@pytest.mark.parametrize("name", ORACLE_VOCABS)
def test_detokenize_and_pieces_match_llama_cpp(name: str, tokenizers):
    _check_id_sequences(tokenizers(name), _load_golden(name))


@pytest.mark.parametrize("name", ORACLE_VOCABS)
def test_special_tokens_match_llama_cpp(name: str, tokenizers):
    _check_facts(tokenizers(name), _load_golden(name)["facts"])


def test_default_model_matches_llama_cpp(default_model_path):
    tokenizer = Tokenizer.from_gguf(default_model_path)
    golden = _load_golden("SmolLM2-135M-Instruct.Q4_1")
    _check_random_strings(tokenizer, golden)
    _check_id_sequences(tokenizer, golden)
    _check_facts(tokenizer, golden["facts"])


def test_missing_pre_tokenizer_means_default_with_a_warning(vocab_file, caplog):
    with caplog.at_level("WARNING"):
        tokenizer = Tokenizer.from_gguf(vocab_file("ggml-vocab-gpt-neox"))  # made before tokenizer.ggml.pre existed
    assert tokenizer.vocab.pre.pre_type == "DEFAULT"
    assert "missing pre-tokenizer type" in caplog.text
