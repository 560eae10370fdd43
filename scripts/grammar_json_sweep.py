"""JSON Schema sweep on the default model: 100 varied schemas x 5 seeds, temperature 0.8, max_tokens 512.

Every run that ends (finish_reason "stop") must give text that ``json.loads`` parses and ``jsonschema``
validates; runs cut by max_tokens are counted separately. Outside the default test suite (it
generates up to 256k tokens).

    python scripts/grammar_json_sweep.py [--schemas 100] [--seeds 5] [--model PATH] [--engine llama.cpp]

Uses ``LLM.create_completion(prompt, json_schema=schema, ...)``. With ``--engine llama.cpp`` the same
prompts and seeds run through llama-cpp-python (the oracle venv, a child process): its
``json_schema_to_gbnf`` (a port of llama.cpp's json_schema_to_grammar.py) and llama.cpp's GBNF sampler;
both engines sample with the same chain (top_k 40, top_p 0.95, min_p 0.05, temperature 0.8).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from typing import Any

WORDS = ["name", "city", "title", "color", "id", "count", "price", "tags", "active", "owner", "email", "date",
         "score", "level", "notes", "items", "status", "rating", "size", "code", "country", "year", "unit"]
FORMATS = ["date", "time", "date-time", "uuid", "email"]
ORACLE_PYTHON = "/work/venv-oracle/bin/python"
SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0}


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


def run_llama_cpp(model: str, jobs: list[dict[str, Any]], max_tokens: int) -> None:
    """Child mode (oracle venv): one JSON line per (schema, seed) job: finish_reason and text."""
    from llama_cpp import Llama, LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    llm = Llama(model, n_ctx=4096, n_threads=2, verbose=False)
    for job in jobs:
        try:
            grammar = LlamaGrammar.from_string(json_schema_to_gbnf(json.dumps(job["schema"])), verbose=False)
        except Exception as exc:  # noqa: BLE001 - a schema llama.cpp cannot convert is reported, not fatal
            print(json.dumps({"finish_reason": "error", "text": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        for seed in job["seeds"]:
            result = llm.create_completion(job["prompt"], grammar=grammar, max_tokens=max_tokens, seed=seed,
                                           **SAMPLING)
            choice = result["choices"][0]
            print(json.dumps({"finish_reason": choice["finish_reason"], "text": choice["text"]}), flush=True)


def _llama_cpp_schema(args: argparse.Namespace, model: str, schema: dict[str, Any], prompt: str,
                      seeds: list[int]) -> list[tuple[str, str]]:
    """One schema's runs in a child process of its own: llama.cpp's grammar sampler can crash the
    process (it segfaults on some $ref schemas), and a crash ends only that schema's remaining runs."""
    child = subprocess.run([args.oracle_python, __file__, "--llama-cpp-child", "--model", model,
                            "--max-tokens", str(args.max_tokens)],
                           input=json.dumps([{"schema": schema, "prompt": prompt, "seeds": seeds}]),
                           capture_output=True, text=True, check=False)
    results = [(line["finish_reason"], line["text"]) for line in map(json.loads, child.stdout.splitlines())]
    return results + [("crash", f"exit {child.returncode}")] * (len(seeds) - len(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first", type=int, default=1, help="start at this schema (1-based), to resume a sweep")
    parser.add_argument("--model", default=None, help="GGUF path (default: the default model)")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--engine", choices=["llmcore", "llama.cpp"], default="llmcore")
    parser.add_argument("--oracle-python", default=ORACLE_PYTHON)
    parser.add_argument("--llama-cpp-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.llama_cpp_child:
        run_llama_cpp(args.model, json.loads(sys.stdin.read()), args.max_tokens)
        return

    import jsonschema  # not in the oracle venv, so imported here, not by the child

    from llmcore.api.llm import LLM

    llm = LLM(args.model, seed=0)
    first = args.first - 1
    schemas = make_schemas(args.schemas)[first:]
    prompts = [llm.chat_template.render([{"role": "system", "content": "You reply with JSON only."},
                                         {"role": "user", "content": "Give an example JSON value for this JSON Schema:\n"
                                                                     + json.dumps(schema)}],
                                        add_generation_prompt=True) for schema in schemas]
    seeds = list(range(args.seeds))
    if args.engine == "llmcore":
        results = ((choice.finish_reason, choice.text) for schema, prompt in zip(schemas, prompts) for seed in seeds
                   for choice in llm.create_completion(prompt, json_schema=schema, max_tokens=args.max_tokens,
                                                       seed=seed, **SAMPLING).choices)
    else:
        results = (result for schema, prompt in zip(schemas, prompts)
                   for result in _llama_cpp_schema(args, str(llm.model_path), schema, prompt, seeds))

    ended = cut = crashed = 0
    failures: list[str] = []
    start = time.perf_counter()
    for run, (finish_reason, text) in enumerate(results):
        index, seed = divmod(run, len(seeds))
        index += first
        if finish_reason == "crash":
            crashed += 1
        elif finish_reason != "stop":
            cut += 1
        else:
            ended += 1
            try:
                jsonschema.validate(json.loads(text), schemas[index - first])
            except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
                failures.append(f"schema {index + 1} seed {seed}: {type(exc).__name__}: {str(exc).splitlines()[0]}\n"
                                f"  text: {text[:200]!r}")
        if seed == len(seeds) - 1:
            print(f"schema {index + 1}/{args.schemas}: {ended} ended, {cut} cut by max_tokens, "
                  f"{len(failures)} invalid, {crashed} crashed ({time.perf_counter() - start:.0f} s)", flush=True)
    for failure in failures:
        print(failure)
    print(f"{args.engine}: runs that ended: {ended}; invalid: {len(failures)}; cut by max_tokens: {cut}; crashed: {crashed}")
    print(f"{ended - len(failures)} passed, {len(failures)} failed, {cut} skipped")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
