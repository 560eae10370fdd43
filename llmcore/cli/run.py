"""``llmcore run``: text completion from a prompt, with llama-completion's flags."""

from __future__ import annotations

import argparse
import codecs
import sys
from pathlib import Path

from llmcore.cli._common import add_model_args, load_llm, print_memory
from llmcore.errors import LLMCoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="generate text from a prompt (llama-cli / llama-completion)",
                              description="Generate text from a prompt. With no -m, the default model "
                                          "(SmolLM2-135M-Instruct) is fetched once into the cache.")
    add_model_args(p)
    g = p.add_argument_group("prompt and generation")
    g.add_argument("-p", "--prompt", help="prompt to start generation with")
    g.add_argument("-f", "--file", help="a file containing the prompt")
    g.add_argument("-n", "--n-predict", type=int, default=-1, metavar="N",
                   help="number of tokens to predict (default: -1, until end of text or a full context)")
    g.add_argument("-e", "--escape", action="store_true", help="process escapes (\\n, \\t, \\', \\\", \\\\) in the prompt")
    g.add_argument("--ignore-eos", action="store_true", help="keep generating after the end-of-text token")
    g.add_argument("--no-display-prompt", action="store_true", help="don't print the prompt before the generation")
    g.add_argument("--verbose-prompt", action="store_true", help="print the prompt's tokens before generating")
    s = p.add_argument_group("sampling (llama.cpp's defaults)")
    s.add_argument("-s", "--seed", type=int, default=-1, help="RNG seed (default: -1, random)")
    s.add_argument("--temp", type=float, default=0.8, help="temperature; <= 0 is greedy (default: 0.8)")
    s.add_argument("--top-k", type=int, default=40, help="top-k sampling, 0 = disabled (default: 40)")
    s.add_argument("--top-p", type=float, default=0.95, help="top-p sampling, 1.0 = disabled (default: 0.95)")
    s.add_argument("--min-p", type=float, default=0.05, help="min-p sampling, 0.0 = disabled (default: 0.05)")
    s.add_argument("--typical", type=float, default=1.0, help="locally typical sampling p, 1.0 = disabled")
    s.add_argument("--repeat-penalty", type=float, default=1.0, help="penalty for repeated tokens (default: 1.0, off)")
    s.add_argument("--repeat-last-n", type=int, default=64, help="tokens considered for penalties (default: 64)")
    s.add_argument("--presence-penalty", type=float, default=0.0, help="presence penalty (default: 0.0)")
    s.add_argument("--frequency-penalty", type=float, default=0.0, help="frequency penalty (default: 0.0)")
    s.add_argument("--mirostat", type=int, default=0, choices=(0, 1, 2), help="Mirostat sampling v1 or v2 (default: 0)")
    s.add_argument("--mirostat-lr", type=float, default=0.1, help="Mirostat learning rate eta (default: 0.1)")
    s.add_argument("--mirostat-ent", type=float, default=5.0, help="Mirostat target entropy tau (default: 5.0)")
    c = p.add_argument_group("constrained output")
    c.add_argument("--grammar", metavar="GBNF", help="GBNF grammar the output must follow")
    c.add_argument("--grammar-file", metavar="FNAME", help="file with a GBNF grammar")
    c.add_argument("-j", "--json-schema", metavar="SCHEMA", help="JSON schema the output must follow")
    c.add_argument("-jf", "--json-schema-file", metavar="FNAME", help="file with a JSON schema")
    from llmcore.cli import conversation

    conversation.add_args(p)
    p.set_defaults(func=run)


def sampling_from_args(args: argparse.Namespace) -> dict:
    grammar = _read_optional(args.grammar_file) if args.grammar_file else args.grammar
    schema = _read_optional(args.json_schema_file) if args.json_schema_file else args.json_schema
    constraint = {"grammar": grammar} if grammar else {"json_schema": schema} if schema else {}
    return constraint | {
        "temperature": args.temp, "top_k": args.top_k, "top_p": args.top_p, "min_p": args.min_p,
        "typical_p": args.typical, "repeat_penalty": args.repeat_penalty, "repeat_last_n": args.repeat_last_n,
        "presence_penalty": args.presence_penalty, "frequency_penalty": args.frequency_penalty,
        "mirostat": args.mirostat, "mirostat_eta": args.mirostat_lr, "mirostat_tau": args.mirostat_ent,
        "seed": None if args.seed < 0 else args.seed,
    }


def _read_optional(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise LLMCoreError(f"cannot read {path}: {error.strerror}") from None


def read_prompt(args: argparse.Namespace) -> str:
    if args.file:
        try:
            prompt = Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise LLMCoreError(f"cannot read prompt file {args.file}: {error.strerror}") from None
    else:
        prompt = args.prompt or ""
    if args.escape:
        prompt = codecs.decode(prompt.encode("utf-8"), "unicode_escape").encode("latin-1").decode("utf-8")
    return prompt


def run(args: argparse.Namespace) -> int:
    from llmcore.cli import conversation

    prompt = read_prompt(args)
    llm = load_llm(args)
    if conversation.wanted(args, llm):
        return conversation.run_session(llm, args, prompt)
    cache = conversation.prompt_cache(args)
    if cache:
        cache.load(llm)
    tokens = llm.tokenize(prompt, add_special=True, parse_special=True)
    sampler = llm.sampler(**sampling_from_args(args))  # a bad grammar fails before any output
    if args.verbose_prompt:
        for token in tokens:
            print(f"{token:6d} -> {llm.tokenizer.token_to_piece(token)!r}", file=sys.stderr)
    if not args.no_display_prompt:
        sys.stdout.write(prompt)
    try:
        for piece in llm.generate(tokens, max_tokens=args.n_predict, ignore_eos=args.ignore_eos, sampler=sampler):
            sys.stdout.write(piece)
            sys.stdout.flush()
    finally:  # the prompt's cells stay valid whatever stopped the generation
        if cache:
            cache.save(llm, tokens)
    sys.stdout.write("\n")
    print_timings(llm)
    if args.verbose:  # the KV cache and compute buffers exist once the first step has run
        print_memory(llm)
    return 0


def print_timings(llm, timings=None) -> None:
    """llama.cpp's perf lines on stderr, for the last generation or the given ``timings``."""
    t = llm.last.timings if timings is None else timings
    lines = [
        f"load time = {llm.load_ms:10.2f} ms",
        f"prompt eval time = {t.prompt_ms:10.2f} ms / {t.prompt_n:5d} tokens ({_per(t.prompt_ms, t.prompt_n)})",
        f"eval time = {t.predicted_ms:10.2f} ms / {t.predicted_n:5d} runs   ({_per(t.predicted_ms, t.predicted_n)})",
        f"total time = {llm.load_ms + t.prompt_ms + t.predicted_ms:10.2f} ms / {t.prompt_n + t.predicted_n:5d} tokens",
    ]
    for line in lines:
        print(f"llmcore_perf: {line:>}", file=sys.stderr)


def _per(ms: float, n: int) -> str:
    if not n or not ms:
        return "      n/a ms per token,       n/a tokens per second"
    return f"{ms / n:8.2f} ms per token, {1e3 * n / ms:8.2f} tokens per second"
