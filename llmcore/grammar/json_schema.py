"""JSON Schema input: check a schema, give llama.cpp's json-schema-to-grammar meaning to the places
where JSON Schema is loose, and hand the result to llguidance's JSON compiler.

What changes before llguidance sees the schema (llama.cpp's ``common/json-schema.cpp`` semantics):

* a schema without ``type`` takes it from its keywords: ``properties`` / non-true
  ``additionalProperties`` make an object, ``items`` / ``prefixItems`` an array, ``pattern`` /
  ``minLength`` / ``maxLength`` / ``format`` a string;
* an object with ``properties`` and no ``additionalProperties`` allows no other property;
* a tuple (``"items": [...]`` or ``prefixItems`` without ``items``) has exactly its listed items;
* ``oneOf`` is treated as ``anyOf``; ``uuid1``..``uuid5`` formats are ``uuid``; ``date``, ``time``
  and ``date-time`` follow llama.cpp's rules (at most three fraction digits, a required zone);
  other formats (``email``, ``uri``, ...) and ``uniqueItems`` are not enforced (llama.cpp ignores
  them too);
* annotations (``title``, ``description``, ``$schema``, ...) and unknown keywords are dropped.

Beyond llama.cpp: ``maximum``/``minimum`` bind numbers as well as integers, and ``"items": false``
is accepted. A keyword that no engine can enforce (``not``, ``if``, ``contains``, ...) is an error
naming its JSON path, e.g. ``json schema: #/properties/tags/contains: unsupported keyword``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import llguidance

from llmcore.grammar.errors import GrammarError

# Validation keywords whose meaning a grammar cannot (or llguidance does not) express.
_UNSUPPORTED = frozenset({
    "not", "if", "then", "else", "contains", "minContains", "maxContains", "propertyNames",
    "dependentRequired", "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems",
    "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
})
# Keywords passed on as they are (after checking their value's type).
_PLAIN = {
    "type": (str, list), "enum": list, "required": list, "const": object,
    "minItems": int, "maxItems": int, "minLength": int, "maxLength": int,
    "minProperties": int, "maxProperties": int,
    "minimum": (int, float), "maximum": (int, float), "exclusiveMinimum": (int, float),
    "exclusiveMaximum": (int, float), "multipleOf": (int, float), "pattern": str, "$ref": str,
}
# The deepest a schema may nest, in JSON levels (a property's schema is two below its object's:
# "properties", then its name): checked before recursing, far above any real schema and below
# the 128 levels at which llguidance's JSON reader gives up.
MAX_SCHEMA_DEPTH = 100
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
# the formats llama.cpp's converter enforces; others (email, uri, ...) are plain strings there and here:
# a small model that cannot write a valid e-mail address would otherwise never close the string
_FORMATS = frozenset({"uuid"})
_UUID_VERSIONS = frozenset({"uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
# llama.cpp's date and time rules (common/json-schema-to-grammar.cpp), stricter than RFC 3339 and
# llguidance's: at most three fraction digits and a required zone, so a model cannot run on in a
# fraction forever.
_DATE = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{3})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_FORMAT_PATTERNS = {"date": f"^{_DATE}$", "time": f"^{_TIME}$", "date-time": f"^{_DATE}T{_TIME}$"}

# llama.cpp's ``space`` rule: nothing, one space, or one or two newlines and up to 20 spaces/tabs of
# indentation. Bounded whitespace keeps a small model from padding forever.
_WHITESPACE = r"(?: |\n{1,2}[ \t]{0,20})?"
COMPILE_OPTIONS = {"whitespace_pattern": _WHITESPACE, "coerce_one_of": True}


def _pointer(path: str, key: str | int) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _fail(path: str, problem: str) -> GrammarError:
    return GrammarError(f"json schema: {path}: {problem}")


def _infer_type(schema: Mapping[str, Any]) -> str | None:
    """llama.cpp's choice of type for a schema that names none (common_chat_schema_builder)."""
    if any(key in schema for key in ("$ref", "anyOf", "oneOf", "allOf", "const", "enum")):
        return None
    if "properties" in schema or schema.get("additionalProperties", True) is not True:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(key in schema for key in ("pattern", "minLength", "maxLength", "format")):
        return "string"
    return None


def _prepare(schema: Any, path: str) -> Any:
    if isinstance(schema, bool):
        return schema
    if path.count("/") > MAX_SCHEMA_DEPTH:  # one "/" per level: names have theirs escaped as ~1
        raise _fail(path[:60] + "...", f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
    if not isinstance(schema, Mapping):
        raise _fail(path, f"a schema must be an object or a boolean, got {type(schema).__name__}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        where = _pointer(path, key)
        if key in _UNSUPPORTED:
            raise _fail(where, f"unsupported keyword '{key}'")
        if key in _PLAIN:
            expected = _PLAIN[key]
            if isinstance(value, bool) and expected is not object or not isinstance(value, expected):
                raise _fail(where, f"'{key}' has the wrong type ({type(value).__name__})")
            if key == "$ref" and not value.startswith("#"):
                raise _fail(where, f"only references inside the schema (#/...) are supported, got {value!r}")
            if key == "pattern":
                _check_pattern(value, where)
            out[key] = value
        elif key in _SCHEMA_MAPS:
            if not isinstance(value, Mapping):
                raise _fail(where, f"'{key}' must be an object")
            out[key] = {name: _prepare(sub, _pointer(where, name)) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            if not isinstance(value, list) or not value:
                raise _fail(where, f"'{key}' must be a non-empty array of schemas")
            out["anyOf" if key == "oneOf" else key] = [_prepare(sub, _pointer(where, i))
                                                      for i, sub in enumerate(value)]
        elif key in ("items", "prefixItems"):
            if isinstance(value, list):  # a tuple (draft 4-2019 "items": [...], or 2020-12 prefixItems)
                out["prefixItems"] = [_prepare(sub, _pointer(where, i)) for i, sub in enumerate(value)]
            elif key == "items" or "items" not in schema:  # llama.cpp: a lone schema is the item schema
                out["items"] = _prepare(value, where)
        elif key in ("additionalProperties", "additionalItems"):
            out[key] = _prepare(value, where)
        elif key == "format":
            if not isinstance(value, str):
                raise _fail(where, "'format' must be a string")
            value = "uuid" if value in _UUID_VERSIONS else value
            if value in _FORMAT_PATTERNS:
                if "pattern" not in schema:  # a pattern wins, as in llama.cpp
                    out["pattern"] = _FORMAT_PATTERNS[value]
            elif value in _FORMATS:
                out[key] = value
        # annotations, uniqueItems and unknown keywords are dropped
    _check_types(out, path)
    return _apply_llama_semantics(out, schema)


def _check_pattern(pattern: str, path: str) -> None:
    problem = llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_regex(pattern))
    if problem:
        detail = " ".join(line.strip() for line in problem.strip().splitlines() if line.strip())
        shown = repr(pattern) if len(pattern) <= 80 else repr(pattern[:80]) + "..."
        raise _fail(path, f"unsupported regular expression {shown}: {detail[:200]}")


def _check_types(schema: dict[str, Any], path: str) -> None:
    types = schema.get("type")
    for name in types if isinstance(types, list) else [types] if types is not None else []:
        if name not in _TYPES:
            raise _fail(_pointer(path, "type"), f"unknown type {name!r}")
    if "enum" in schema and not schema["enum"]:
        raise _fail(_pointer(path, "enum"), "'enum' must not be empty")


def _apply_llama_semantics(schema: dict[str, Any], original: Mapping[str, Any]) -> dict[str, Any]:
    if "type" not in schema:
        inferred = _infer_type(original)
        if inferred is not None:
            schema["type"] = inferred
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    if "prefixItems" in schema:
        tail = schema.pop("additionalItems", None) if isinstance(original.get("items"), list) else None
        if "items" not in schema:
            schema["items"] = False if tail is None else tail
        schema.setdefault("minItems", len(schema["prefixItems"]))
    return schema


def prepare_schema(schema: Any) -> Any:
    """The schema as llguidance should compile it; raises :class:`GrammarError` naming the JSON path
    of the first unsupported or malformed part. ``schema`` may be a JSON string."""
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"json schema: not valid JSON: line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg}") from None
    if schema is False:
        raise _fail("#", "the schema 'false' matches nothing")
    return _prepare(schema, "#")
