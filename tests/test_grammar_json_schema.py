"""JSON Schema constraints: llama.cpp's test-grammar-integration.cpp schema cases, the schemas of its
test-json-schema-to-grammar.cpp with accepted/rejected strings of our own (every accepted string is
also checked with the ``jsonschema`` validator), error paths, and our extensions."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from test_grammar_helpers import ByteVocab, matches

from llmcore.grammar import Grammar, GrammarError

FIXTURES = Path(__file__).parent / "fixtures" / "grammar"
INTEGRATION = [c for c in json.loads((FIXTURES / "llama_integration_cases.json").read_text("utf-8"))["cases"]
               if c["kind"] == "json_schema"]
SCHEMA_CASES = {c["name"]: c for c in json.loads((FIXTURES / "llama_schema_cases.json").read_text("utf-8"))["cases"]}
VOCAB = ByteVocab()

# llama.cpp's converter caps integers at 16 digits even without a bound; a JSON number that
# satisfies the schema is accepted here.
INTEGRATION_DIFFERENCES = {
    ("min 0", "100000000000000000000000000000000"),
    ("min 2", "12345678900000000"),
}
# llama.cpp warns and accepts any string for a pattern it cannot translate; we refuse it, naming the path.
SCHEMA_STATUS_DIFFERENCES = {"unsupported regexp in a property": "#/properties/a/pattern"}

# Our strings for test-json-schema-to-grammar.cpp's schemas: (accepted, rejected).
OWN_CASES: dict[str, tuple[list[str], list[str]]] = {
    "min 0": (["0", "7", "123456"], ["-1", "01", "-0", "1.5"]),
    "min 10": (["10", "11", "99", "100"], ["9", "0", "-10"]),
    "max 30": (["30", "-5", "0", "29"], ["31", "300"]),
    "min -123": (["-123", "-1", "0", "5000"], ["-124", "-1000"]),
    "max -5": (["-5", "-6", "-100"], ["-4", "0", "5"]),
    "min 15 max 300": (["15", "16", "300", "299", "99"], ["14", "301", "1", "3000"]),
    "min -10 max 10": (["-10", "0", "10", "-9"], ["-11", "11", "100"]),
    "empty schema (any value)": (["{}", "[1, \"a\"]", "null", "-1.5e3", "\"x\""], ["{", "nul", "'a'"]),
    "exotic formats": ([('["2012-04-23", "12345678-1234-1234-1234-1234567890ab", "18:25:43.511Z", '
                         '"2012-04-23T18:25:43.511Z"]')], ['["2012-04-23"]', '["x", "y", "z", "w"]']),
    "string w/ min length 3": (['"abc"', '"abcdef"'], ['"ab"', '""']),
    "string w/ min & max length": (['"a"', '"abcd"'], ['""', '"abcde"']),
    "boolean": (["true", "false"], ["True", "1", "null"]),
    "integer": (["0", "-12", "42"], ["1.0", "01", "\"1\""]),
    "string const": (['"foo"'], ['"bar"', "foo"]),
    "non-string const": (["123"], ["1234", "12"]),
    "non-string enum": (['"red"', "null", "42", '["foo"]'], ['"blue"', "43", '["bar"]']),
    "string array": (['[]', '["a", "b"]'], ['[1]', '"a"']),
    "nullable string array": (['null', '["a"]'], ['[null]', '{}']),
    "tuple1": (['["a"]'], ['[]', '["a", "b"]', '[1]']),
    "tuple2": (['["a", 1.5]'], ['["a"]', '[1, "a"]', '["a", 1, 2]']),
    "array with empty items": (['[]', '[1, "a", null]'], ['{}']),
    "number": (["0", "-1.5", "2e10", "3.25E-2"], ["01", ".5", "1.", "+1"]),
    "minItems": (['[true, false]', '[true, true, true]'], ['[]', '[true]']),
    "maxItems 0": (['[]'], ['[true]']),
    "maxItems 2": (['[]', '[true, false]'], ['[true, true, true]']),
    "min + max items with min + max values across zero": (['[-12, 0, 207]', '[1, 2, 3, 4, 5]'],
                                                          ['[-13, 0, 0]', '[0, 0, 208]', '[0, 0]']),
    "simple regexp": (['"abefgkl"', '"abcddefgggkl"', '"abefghijkl"'], ['"abdefg"', '"abcefkl"']),
    "regexp escapes": (['"[]{}()|+*?"'], ['"[]"']),
    "regexp quote": (['"\\""'], ['"a"']),
    "regexp": (['"(123)456-7890 aaand..."', '"456-7890 aaaaand!!!"'], ['"4567890 aaand..."']),
    "required props in original order": (['{"b": "x", "c": "y", "a": "z"}'],
                                         ['{"a": "z", "b": "x", "c": "y"}', '{"b": "x", "c": "y"}']),
    "N optional props": (['{}', '{"a": "x", "c": "z"}'], ['{"d": "w"}', '{"c": "z", "a": "x"}']),
    "required + optional props each in original order": (['{"b": "1", "a": "2"}', '{"b": "1", "a": "2", "c": "3"}'],
                                                         ['{"a": "2"}', '{"b": "1", "a": "2", "e": "5"}']),
    "additional props": (['{}', '{"x": [1, 2.5]}'], ['{"x": 1}', '{"x": ["a"]}']),
    "empty w/o additional props": (['{}'], ['{"a": 1}']),
    "required + additional props": (['{"a": 1}', '{"a": 1, "b": "x"}'], ['{}', '{"a": 1, "b": 2}']),
    "optional props with empty name": (['{"": 1}', '{"": 1, "a": 2, "b": 3}'], ['{"": "x"}']),
    "top-level $ref": (['{"a": "x"}'], ['{}', '{"a": 1}']),
    "anyOf": (['{"a": 1}', '{"b": 2}', '{}'], ['{"a": "x"}', '[]']),
    "anyOf $ref": (['{"a": "x", "b": "y"}', '{"b": true}'], ['{"b": null}', '{"b": 1}']),
    "allOf with multiple enum schemas": (['"b"', '"c"'], ['"a"', '"d"']),
    "conflicting names": (['{"number": {"number": {"root": 1.5}}}'], ['{"number": {"number": {}}}']),
    "literal string with escapes": (['{"code": " \\r \\n \\" \\\\ "}'], ['{"code": " "}']),
    "regexp with nested non-capturing groups": (['"d"', '"abcd"', '"ababcd"'], ['"acd"', '"abc"']),
    "unanchored regexp": (['"12"', '"a1b"'], ['"abc"']),
    "regexp with escaped hyphen outside a character class": (['"a-b"'], ['"ab"']),
}
# Rejected strings that JSON Schema itself would accept: llama.cpp's conversion is stricter on purpose
# (properties in declared order, a missing additionalProperties means none, a tuple has exactly its items,
# a lone prefixItems schema is the item schema, formats are enforced, integers are written as such).
STRICTER_THAN_JSON_SCHEMA = {
    ("exotic formats", '["2012-04-23"]'), ("exotic formats", '["x", "y", "z", "w"]'), ("integer", "1.0"),
    ("min 0", "-0"), ("nullable string array", "[null]"), ("string array", "[1]"),
    ("tuple1", '["a", "b"]'), ("tuple1", '[]'), ("tuple2", '["a"]'), ("tuple2", '["a", 1, 2]'),
    ("required props in original order", '{"a": "z", "b": "x", "c": "y"}'),
    ("N optional props", '{"c": "z", "a": "x"}'),
    ("string array", '"a"'), ("nullable string array", '{}'),
    ("empty schema (any value)", "'a'"), ("anyOf", '{"a": "x"}'),
}


def _validate(instance: object, schema: dict) -> None:
    """The oracle: draft 2020-12, or draft 7 for schemas written in its tuple form."""
    validator = jsonschema.Draft202012Validator
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError:
        validator = jsonschema.Draft7Validator
    validator(schema).validate(instance)


def _compiled(schema: str) -> Grammar:
    return Grammar.from_json_schema(schema)


@pytest.mark.parametrize("case", INTEGRATION, ids=lambda c: c["description"] or "unnamed")
def test_llama_cpp_integration_schema_cases(case: dict) -> None:
    grammar = _compiled(case["schema"])
    for text in case["passing"]:
        assert matches(grammar, VOCAB, text), text
    for text in case["failing"]:
        expected = (case["description"], text) in INTEGRATION_DIFFERENCES
        assert matches(grammar, VOCAB, text) == expected, text
        if expected:
            _validate(json.loads(text), json.loads(case["schema"]))


@pytest.mark.parametrize("name", sorted(SCHEMA_CASES))
def test_llama_cpp_converter_schemas(name: str) -> None:
    case = SCHEMA_CASES[name]
    if name in SCHEMA_STATUS_DIFFERENCES:
        with pytest.raises(GrammarError, match=SCHEMA_STATUS_DIFFERENCES[name]):
            _compiled(case["schema"])
        return
    if case["status"] == "FAILURE":
        with pytest.raises(GrammarError, match=r"json schema: #"):
            _compiled(case["schema"])
        return
    grammar = _compiled(case["schema"])
    accepted, rejected = OWN_CASES.get(name, ([], []))
    schema = json.loads(case["schema"])
    for text in accepted:
        _validate(json.loads(text), schema)  # the oracle agrees the string is valid
        assert matches(grammar, VOCAB, text), text
    for text in rejected:
        assert not matches(grammar, VOCAB, text), text
        if (name, text) not in STRICTER_THAN_JSON_SCHEMA:
            with pytest.raises((jsonschema.ValidationError, json.JSONDecodeError)):
                _validate(json.loads(text), schema)


def test_own_cases_cover_most_converter_schemas() -> None:
    assert set(OWN_CASES) <= set(SCHEMA_CASES)
    assert len(OWN_CASES) >= 40


@pytest.mark.parametrize(("schema", "path"), [
    ({"type": "object", "properties": {"tags": {"type": "array", "contains": {"type": "string"}}}},
     "#/properties/tags/contains: unsupported keyword 'contains'"),
    ({"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]}, "#/anyOf/1/not: unsupported keyword"),
    ({"$defs": {"a/b": {"if": {}}}, "$ref": "#/$defs/a~1b"}, "#/\\$defs/a~1b/if: unsupported"),
    ({"type": "array", "items": {"type": "strin"}}, "#/items/type: unknown type 'strin'"),
    ({"$ref": "https://example.com/schema.json"}, "#/\\$ref: only references inside the schema"),
    ({"type": "object", "properties": {"x": {"minLength": "3"}}}, "#/properties/x/minLength: 'minLength' has"),
    ({"properties": {"p": 5}}, "#/properties/p: a schema must be an object or a boolean"),
    ({"type": "integer", "minimum": 5, "maximum": 3}, "json schema: .*minimum"),
])
def test_unsupported_or_malformed_schema_names_the_json_path(schema: dict, path: str) -> None:
    with pytest.raises(GrammarError, match=path):
        Grammar.from_json_schema(schema)


def test_invalid_json_text_is_an_error_with_position() -> None:
    with pytest.raises(GrammarError, match="line 1, column 10"):
        Grammar.from_json_schema('{"type": }')


def test_number_maximum_and_minimum_are_enforced() -> None:
    # llama.cpp's converter lets a number exceed its maximum; we do not
    schema = {"type": "number", "minimum": -2, "maximum": 10.5}
    grammar = Grammar.from_json_schema(schema)
    for text in ("10.5", "10.49", "-2", "0", "3"):
        assert matches(grammar, VOCAB, text), text
    for text in ("10.6", "11", "-2.5", "100"):
        assert not matches(grammar, VOCAB, text), text


def test_items_false() -> None:
    # llama.cpp's converter refuses "items": false; it means no items beyond prefixItems
    grammar = Grammar.from_json_schema({"type": "array", "prefixItems": [{"type": "integer"}], "items": False})
    assert matches(grammar, VOCAB, "[1]") and not matches(grammar, VOCAB, "[1, 2]")
    empty = Grammar.from_json_schema({"type": "array", "items": False})
    assert matches(empty, VOCAB, "[]") and not matches(empty, VOCAB, "[1]")


def test_whitespace_is_bounded_like_llama_cpp() -> None:
    grammar = Grammar.from_json_schema({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert matches(grammar, VOCAB, '{\n  "a": 1\n}')
    assert not matches(grammar, VOCAB, '{"a":   1}')
    assert not matches(grammar, VOCAB, '{\n\n\n"a": 1}')


def test_date_and_time_formats_follow_llama_cpp() -> None:
    # llama.cpp's rules: at most three fraction digits and a required zone (RFC 3339 allows more
    # digits, and an unbounded fraction lets a small model run on until max_tokens)
    time = Grammar.from_json_schema({"type": "string", "format": "time"})
    for text in ('"18:25:43Z"', '"18:25:43.511Z"', '"23:59:59+01:00"'):
        assert matches(time, VOCAB, text), text
    for text in ('"18:25:43"', '"18:25:43.5111Z"', '"24:00:00Z"', '"18:25:43.51Z"'):
        assert not matches(time, VOCAB, text), text
    stamp = Grammar.from_json_schema({"type": "string", "format": "date-time"})
    assert matches(stamp, VOCAB, '"2012-04-23T18:25:43.511Z"')
    assert not matches(stamp, VOCAB, '"2012-13-23T18:25:43Z"')
    assert not matches(Grammar.from_json_schema({"type": "string", "format": "date"}), VOCAB, '"2012-04-32"')
    pattern_wins = Grammar.from_json_schema({"type": "string", "format": "date", "pattern": "^x$"})
    assert matches(pattern_wins, VOCAB, '"x"')
    # formats llama.cpp does not enforce stay plain strings
    assert matches(Grammar.from_json_schema({"type": "string", "format": "email"}), VOCAB, '"not an address"')
    uuid = Grammar.from_json_schema({"type": "string", "format": "uuid"})
    assert matches(uuid, VOCAB, '"12345678-1234-1234-1234-1234567890ab"') and not matches(uuid, VOCAB, '"x"')


def test_false_schema_and_unknown_keywords() -> None:
    with pytest.raises(GrammarError, match="matches nothing"):
        Grammar.from_json_schema(False)
    grammar = Grammar.from_json_schema({"type": "string", "x-vendor": 1, "title": "t", "uniqueItems": True,
                                        "$schema": "https://json-schema.org/draft/2020-12/schema"})
    assert matches(grammar, VOCAB, '"ok"')
