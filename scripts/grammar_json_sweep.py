"""JSON Schema sweep on the default model: 100 varied schemas x 5 seeds, temperature 0.8, max_tokens 512.

Every run that ends (finish_reason "stop") must give text that ``json.loads`` parses and ``jsonschema``
validates; runs cut by max_tokens are counted separately. Outside the default test suite (it
generates up to 256k tokens).

    python scripts/grammar_json_sweep.py [--schemas 100] [--seeds 5] [--model PATH]

Uses ``LLM.create_completion(prompt, json_schema=schema, ...)``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

import jsonschema

WORDS = ["name", "city", "title", "color", "id", "count", "price", "tags", "active", "owner", "email", "date",
         "score", "level", "notes", "items", "status", "rating", "size", "code", "country", "year", "unit"]
FORMATS = ["date", "time", "date-time", "uuid", "email"]


def _leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["string", "integer", "number", "boolean", "enum", "const", "pattern", "format",
                       "nullable", "bounded_int", "bounded_number", "short_string"])
    if kind == "string":
        return {"type": "string"}
    if kind == "short_string":
        return {"type": "string", "minLength": rng.randint(1, 3), "maxLength": rng.randint(4, 20)}
    if kind == "integer":
        return {"type": "integer"}
    if kind == "bounded_int":
        low = rng.randint(-100, 50)
        return {"type": "integer", "minimum": low, "maximum": low + rng.randint(1, 500)}
    if kind == "number":
        return {"type": "number"}
    if kind == "bounded_number":
        return {"type": "number", "minimum": rng.choice([-1, 0]), "maximum": rng.choice([1, 10, 99.5])}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", "blue", "small", "large", 1, 2, None, True], rng.randint(2, 4))}
    if kind == "const":
        return {"const": rng.choice(["v1", 42, True])}
    if kind == "pattern":
        return {"type": "string", "pattern": rng.choice(["^[A-Z]{2}-[0-9]{3}$", "^[a-z]+(_[a-z]+)*$", "^\\d{4}$"])}
    if kind == "format":
        return {"type": "string", "format": rng.choice(FORMATS)}
    return {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]}


def _node(rng: random.Random, depth: int) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 2 or roll < 0.55:
        return _leaf(rng)
    if roll < 0.75:
        return {"type": "array", "items": _node(rng, depth + 1), "minItems": rng.randint(0, 1),
                "maxItems": rng.randint(2, 4)}
    if roll < 0.85:
        return {"type": "array", "prefixItems": [_leaf(rng), _leaf(rng)], "items": False}
    return _object(rng, depth + 1)


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    names = rng.sample(WORDS, rng.randint(1, 4 if depth else 6))
    properties = {name: _node(rng, depth) for name in names}
    required = [name for name in names if rng.random() < 0.7]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if rng.random() < 0.2:
        schema["additionalProperties"] = False
    return schema


def make_schemas(count: int, seed: int = 1234) -> list[dict[str, Any]]:
    """``count`` varied schemas (objects, arrays, $defs references), the same for a given seed."""
    rng = random.Random(seed)
    schemas = []
    for index in range(count):
        if index % 10 == 9:  # a $ref-based schema now and then
            schemas.append({"$defs": {"item": _object(rng, 1)}, "type": "object",
                            "properties": {"list": {"type": "array", "items": {"$ref": "#/$defs/item"},
                                                    "maxItems": 3}, "main": {"$ref": "#/$defs/item"}},
                            "required": ["main"]})
        elif index % 10 == 8:
            schemas.append({"type": "array", "items": _object(rng, 1), "minItems": 1, "maxItems": 3})
        else:
            schemas.append(_object(rng, 0))
    return schemas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default=None, help="GGUF path (default: the default model)")
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()

    from llmcore.api.llm import LLM

    llm = LLM(args.model, seed=0)
    ended = cut = 0
    failures: list[str] = []
    start = time.perf_counter()
    for index, schema in enumerate(make_schemas(args.schemas)):
        messages = [{"role": "system", "content": "You reply with JSON only."},
                    {"role": "user", "content": "Give an example JSON value for this JSON Schema:\n"
                                                + json.dumps(schema)}]
        prompt = llm.chat_template.render(messages, add_generation_prompt=True)
        for seed in range(args.seeds):
            result = llm.create_completion(prompt, json_schema=schema, temperature=0.8, max_tokens=args.max_tokens,
                                           seed=seed)
            choice = result.choices[0]
            if choice.finish_reason != "stop":
                cut += 1
                continue
            ended += 1
            try:
                jsonschema.validate(json.loads(choice.text), schema)
            except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
                failures.append(f"schema {index} seed {seed}: {type(exc).__name__}: {str(exc).splitlines()[0]}\n"
                                f"  text: {choice.text[:200]!r}")
        print(f"schema {index + 1}/{args.schemas}: {ended} ended, {cut} cut by max_tokens, "
              f"{len(failures)} invalid ({time.perf_counter() - start:.0f} s)", flush=True)
    for failure in failures:
        print(failure)
    print(f"runs that ended: {ended}; invalid: {len(failures)}; cut by max_tokens: {cut}")
    print(f"{ended - len(failures)} passed, {len(failures)} failed, {cut} skipped")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
