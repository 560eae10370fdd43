"""Grammars and schemas that used to stall or crash: request-time limits on size, rule count and
nesting, checks that are linear in the grammar, and 400s naming the field a server request used
(issue 15, finding 2). Time bounds are generous: a loaded 2-core machine is slow, a stall is not."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from llmcore.grammar import Grammar, GrammarError
from llmcore.grammar.gbnf import MAX_GRAMMAR_CHARS, MAX_NESTING, MAX_RULES
from llmcore.grammar.json_schema import MAX_SCHEMA_DEPTH


def chain(n_rules: int, last: str = '"a"') -> str:
    """``root ::= r0``, ``r0 ::= r1``, ... : the grammar of the finding (20,000 rules, 300 KB)."""
    return "root ::= r0\n" + "".join(f"r{i} ::= r{i + 1}\n" for i in range(n_rules)) + f"r{n_rules} ::= {last}\n"


def refused_quickly(text: str, expected: str, seconds: float = 1.0) -> str:
    start = time.perf_counter()
    with pytest.raises(GrammarError) as caught:
        Grammar.from_gbnf(text)
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    assert expected in message and "\n" not in message, message
    assert elapsed < seconds, f"{elapsed:.2f} s"
    return message


def test_a_20000_rule_chain_is_refused_within_a_second():
    refused_quickly(chain(20_000), "more than the limit")


def test_more_rules_than_the_limit_are_refused_quickly():
    text = chain(MAX_RULES + 10)
    if len(text) < MAX_GRAMMAR_CHARS:
        refused_quickly(text, f"more than {MAX_RULES} rules")


def test_nested_parentheses_are_refused_before_recursion_runs_out():
    refused_quickly("root ::= " + "(" * 1000 + '"a"' + ")" * 1000 + "\n", f"nest deeper than {MAX_NESTING}")
    refused_quickly('root ::= "a"' + "*" * 1000 + "\n", f"nest deeper than {MAX_NESTING}")


def test_nesting_up_to_the_limit_is_accepted():
    depth = MAX_NESTING - 1  # the rule body itself is one level
    Grammar.from_gbnf("root ::= " + "(" * depth + '"a" | "b"' + ")" * depth + "\n")


def test_a_long_chain_within_the_limits_compiles_and_matches(vocab_tokenizer):
    # ~200 rules already overflowed Python's recursion; ~3,000 overflowed llguidance's stack (a segfault)
    start = time.perf_counter()
    grammar = Grammar.from_gbnf(chain(MAX_RULES - 2, '"ab"'))
    assert time.perf_counter() - start < 10
    result: list[int] = []

    def sample_on_an_ordinary_thread() -> None:  # the batcher's thread has the usual 8 MB stack
        matcher = grammar.matcher(vocab_tokenizer)
        mask = np.zeros(vocab_tokenizer.n_vocab, dtype=bool)
        matcher.fill_mask(mask)
        result.append(int(mask.sum()))

    thread = threading.Thread(target=sample_on_an_ordinary_thread)
    thread.start()
    thread.join()
    assert result and result[0] >= 1


def test_an_unproductive_chain_is_found_in_linear_time():
    # the fixpoint re-scanned every rule per round: 4,000 rules took 14.7 s
    message = refused_quickly(chain(MAX_RULES - 2, '"a" r0'), "matches no string", seconds=5)
    assert "more" in message and len(message) < 300  # the stuck rules are named, not all 4,000


def test_long_sequences_of_character_items_translate_in_linear_time():
    # every run of items was re-checked from every start: 400 optional items took 73 s
    items = " ".join(f'"{chr(0x4E00 + i)}"?' for i in range(4000))
    start = time.perf_counter()
    Grammar.from_gbnf(f"root ::= {items}\n")
    assert time.perf_counter() - start < 10


def test_doubling_rules_do_not_blow_up_a_lexeme():
    # r0 ::= r1 r1, r1 ::= r2 r2, ...: inlined into one regular expression it doubles per rule
    text = "root ::= r0\n" + "".join(f"r{i} ::= r{i + 1} r{i + 1}\n" for i in range(1000)) + 'r1000 ::= "a"\n'
    start = time.perf_counter()
    Grammar.from_gbnf(text)
    assert time.perf_counter() - start < 10


def test_a_lone_surrogate_is_a_grammar_error():
    # JSON's "\ud800" arrives as a lone surrogate: llguidance could not encode it (a 500)
    refused_quickly('root ::= "\ud800"\n', "not a Unicode scalar value")


def test_deeply_nested_json_schemas_are_refused_with_their_path():
    schema: dict = {"type": "string"}
    for _ in range(1000):
        schema = {"type": "array", "items": schema}
    start = time.perf_counter()
    with pytest.raises(GrammarError, match=f"nests deeper than {MAX_SCHEMA_DEPTH}") as caught:
        Grammar.from_json_schema(schema)
    assert time.perf_counter() - start < 1 and "\n" not in str(caught.value)
    assert len(str(caught.value)) < 200


def test_a_huge_unsupported_pattern_gives_a_short_error():
    with pytest.raises(GrammarError) as caught:
        Grammar.from_json_schema({"type": "string", "pattern": "(" * 5000 + "a" + ")" * 5000})
    assert len(str(caught.value)) < 400


# -- the server: one-line 400s that name the field --------------------------------------------


@pytest.fixture(scope="module")
def vocab_tokenizer(llm):
    return llm.tokenizer


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


@pytest.mark.parametrize("body, param", [
    ({"grammar": chain(20_000)}, "grammar"),
    ({"grammar": "root ::= " + "(" * 1000 + '"a"' + ")" * 1000}, "grammar"),
    ({"json_schema": {"type": "object", "properties": {"a": {"not": {}}}}}, "json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}}}, "response_format"),
])
def test_server_answers_a_bad_grammar_with_a_400_naming_its_field(app_client, body, param):
    start = time.perf_counter()
    response = app_client.post("/completion", json={"prompt": "Hi", "n_predict": 2} | body)
    elapsed = time.perf_counter() - start
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and "\n" not in error["message"]
    assert elapsed < 2, f"{elapsed:.2f} s"
