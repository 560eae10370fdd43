"""GBNF grammars: llama.cpp's grammars/ folder, its test-grammar-integration.cpp cases, parse errors,
and the places where we deliberately differ (docs/grammar.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from test_grammar_helpers import BYTE_BASE, EOS, N_SPECIAL, ByteVocab, matches, to_tokens

from llmcore.grammar import Grammar, GrammarError

FIXTURES = Path(__file__).parent / "fixtures" / "grammar"
GRAMMAR_FILES = sorted((FIXTURES / "llama_grammars").glob("*.gbnf"))
INTEGRATION = json.loads((FIXTURES / "llama_integration_cases.json").read_text(encoding="utf-8"))["cases"]
GBNF_CASES = [c for c in INTEGRATION if c["kind"] == "gbnf"]
SAMPLES = json.loads((FIXTURES / "gbnf_sample_goldens.json").read_text(encoding="utf-8"))["cases"]
VOCAB = ByteVocab()


@pytest.mark.parametrize("path", GRAMMAR_FILES, ids=lambda p: p.stem)
def test_every_llama_cpp_grammar_loads(path: Path) -> None:
    grammar = Grammar.from_gbnf(path.read_text(encoding="utf-8"))
    mask = np.zeros(VOCAB.n_vocab, dtype=bool)
    grammar.matcher(VOCAB).fill_mask(mask)
    assert mask.any()


@pytest.mark.parametrize("case", SAMPLES, ids=lambda c: f"{c['grammar']}:{c['text'][:20]!r}")
def test_sample_strings_agree_with_llama_cpp(case: dict) -> None:
    grammar = Grammar.from_gbnf((FIXTURES / "llama_grammars" / f"{case['grammar']}.gbnf").read_text("utf-8"))
    assert matches(grammar, VOCAB, case["text"]) == case["llama_cpp_accepts"]


@pytest.mark.parametrize("case", GBNF_CASES, ids=lambda c: c["description"])
def test_llama_cpp_integration_grammar_cases(case: dict) -> None:
    grammar = Grammar.from_gbnf(case["grammar"])
    for text in case["passing"]:
        assert matches(grammar, VOCAB, text), text
    for text in case["failing"]:
        assert not matches(grammar, VOCAB, text), text


@pytest.mark.parametrize(("text", "where"), [
    ('root ::= "a"{,}"', "line 1, column 14"),  # test-grammar-parser.cpp's verify_failure cases
    ('root ::= "a"{,10}"', "line 1, column 14"),
    ('root ::= "a"{5000}', "line 1, column 13"),
    ('root ::= "a"{5000,6000}', "line 1, column 13"),
    ('root ::= "abc', "line 1, column 10"),
    ('root ::= [a-', "line 1, column 10"),
    ('root ::= x\nx ::= "a" ("b" | "c"', "line 2, column 21"),
    ('root ::= "a"\n\nfoo bar', "line 3, column 5"),
    ('root ::= "\\q"', "line 1, column 11"),
    ('root ::= expr\nexpr ::= numero\nnumber ::= [0-9]+', "line 2, column 10"),  # missing reference
    ('root ::= "a"\nroot ::= "b"', "line 2, column 1"),
])
def test_malformed_grammar_names_line_and_column(text: str, where: str) -> None:
    with pytest.raises(GrammarError, match=f"grammar: {where}: "):
        Grammar.from_gbnf(text)


def test_missing_root_and_custom_root() -> None:
    with pytest.raises(GrammarError, match="no rule named 'root'"):
        Grammar.from_gbnf('rot ::= "a"')
    with pytest.raises(GrammarError, match="no rule named 'nonexistent'"):
        Grammar.from_gbnf('root ::= "foobar"', root="nonexistent")
    assert matches(Grammar.from_gbnf('foobar ::= "foobar"', root="foobar"), VOCAB, "foobar")


@pytest.mark.parametrize("text", [
    'root ::= "a" root',
    "root ::= x\nx ::= x \"a\"",
    "root ::= [^\\x00-\\U0010FFFF]",
    "root ::= []",
])
def test_grammar_matching_nothing_is_an_error(text: str) -> None:
    with pytest.raises(GrammarError, match="matches no string"):
        Grammar.from_gbnf(text)


@pytest.mark.parametrize(("text", "good", "bad"), [
    # llama.cpp refuses left recursion (test_failure_left_recursion); the Earley parser handles it
    ('root ::= "a" | root "a"', ["a", "aaaa"], ["", "b"]),
    ('root ::= asdf\nasdf ::= "a" | foo "b"\nfoo ::= "c" | asdf "d" | "e"', ["a", "eb", "adb", "cb"], ["ad"]),
    ('root ::= asdf\nasdf ::= "a" | foo "b"\nfoo ::= "c" | empty asdf "d" | "e"\nempty ::= "blah" | ',
     ["a", "blahadb", "adb"], ["blah"]),
])
def test_left_recursion_is_accepted(text: str, good: list[str], bad: list[str]) -> None:
    grammar = Grammar.from_gbnf(text)
    assert all(matches(grammar, VOCAB, s) for s in good)
    assert not any(matches(grammar, VOCAB, s) for s in bad)


@pytest.mark.parametrize(("text", "good", "bad"), [
    # where greedy lexing would cut differently from GBNF's character-level matching
    ('root ::= ("a" | "ab") "bx"', ["abx", "abbx"], ["ab", "abx x"]),
    ('root ::= word "\n"\nword ::= [a-z]+ ws\nws ::= [ \n]*', ["ab\n", "ab \n", "ab\n\n"], ["ab", "\n"]),
    ('root ::= [a-z]+ "abc"', ["xyzabc", "aabc"], ["abc"]),
])
def test_greedy_lexing_does_not_change_the_language(text: str, good: list[str], bad: list[str]) -> None:
    grammar = Grammar.from_gbnf(text)
    assert all(matches(grammar, VOCAB, s) for s in good)
    assert not any(matches(grammar, VOCAB, s) for s in bad)


NESTED_REPETITION = "root ::= (((((([^x]*){0,99}){0,99}){0,99}){0,99}){0,99}){0,99}"


def test_deeply_nested_repetition() -> None:
    # llama.cpp refuses this one (rule count explodes); as a regular expression it is cheap
    grammar = Grammar.from_gbnf(NESTED_REPETITION)
    assert matches(grammar, VOCAB, "abc") and not matches(grammar, VOCAB, "axc")


@pytest.mark.slow  # a timing: a loaded machine misses it
def test_deeply_nested_repetition_is_fast() -> None:
    start = time.perf_counter()
    grammar = Grammar.from_gbnf(NESTED_REPETITION)
    assert matches(grammar, VOCAB, "abc") and not matches(grammar, VOCAB, "axc")
    assert time.perf_counter() - start < 5


def test_end_token_only_where_the_grammar_may_end() -> None:
    matcher = Grammar.from_gbnf('root ::= "ab" "c"?').matcher(VOCAB)
    mask = np.zeros(VOCAB.n_vocab, dtype=bool)
    for text, end_allowed in (("a", False), ("b", True), ("c", True)):
        mask[:] = False
        matcher.fill_mask(mask)
        assert mask[EOS] == matcher.allows(EOS) == (text == "c")
        assert mask[BYTE_BASE + ord(text)]
        matcher.accept(BYTE_BASE + ord(text))
        assert matcher.is_accepting == end_allowed
    mask[:] = False
    matcher.fill_mask(mask)
    assert np.flatnonzero(mask).tolist() == [EOS]


def test_mask_agrees_with_allows_and_keeps_special_tokens_out_of_text() -> None:
    matcher = Grammar.from_gbnf("root ::= [^\\n]* \"\\n\"").matcher(VOCAB)
    mask = np.zeros(VOCAB.n_vocab + 7, dtype=bool)  # a model may pad its vocabulary
    matcher.fill_mask(mask)
    assert [t for t in range(VOCAB.n_vocab) if matcher.allows(t)] == np.flatnonzero(mask).tolist()
    assert not mask[:N_SPECIAL].any() and not mask[VOCAB.n_vocab:].any()
    assert mask[BYTE_BASE + ord("x")] and not mask[EOS]


def test_tokens_by_id_and_by_text() -> None:
    grammar = Grammar.from_gbnf("root ::= <|t3|> !<[4]>* <[4]>")
    assert matches(grammar, VOCAB, [{"token": 3}, "hi", {"token": 5}, {"token": 4}])
    assert not matches(grammar, VOCAB, [{"token": 3}, {"token": 4}, {"token": 4}])
    with pytest.raises(GrammarError, match="not a single token"):
        Grammar.from_gbnf("root ::= <abc>").matcher(VOCAB)


def test_rejected_token_is_an_error_on_accept() -> None:
    matcher = Grammar.from_gbnf('root ::= "a"').matcher(VOCAB)
    with pytest.raises(GrammarError, match="not allowed"):
        matcher.accept(BYTE_BASE + ord("b"))


def test_matchers_are_independent_per_sequence() -> None:
    grammar = Grammar.from_gbnf('root ::= "ab" | "ac"')
    first, second = grammar.matcher(VOCAB), grammar.matcher(VOCAB)
    first.accept(BYTE_BASE + ord("a"))
    first.accept(BYTE_BASE + ord("b"))
    assert first.is_accepting and not second.is_accepting
    assert second.allows(BYTE_BASE + ord("a")) and not first.allows(BYTE_BASE + ord("a"))
    assert to_tokens("ab") == [BYTE_BASE + ord("a"), BYTE_BASE + ord("b")]
