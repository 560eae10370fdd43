"""``llmcore bench``: prompt and generation throughput, like llama-bench, optionally side by side
with llama.cpp's own llama-bench in interleaved repetitions."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

import gguf

from llmcore.cli._common import add_model_args, load_llm

if TYPE_CHECKING:
    from llmcore.tools.bench import BenchResult


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure prompt and generation speed (llama-bench)",
                              description="Prompt (pp) and generation (tg) tokens per second, median of -r "
                                          "repetitions, each after 0.1 s of warm-up runs (llama-bench warms up "
                                          "before each of its runs). With --llama-bench, llama.cpp's llama-bench "
                                          "runs in interleaved repetitions on the same model and the ratio is "
                                          "printed. "
                                          "For tg, the memory-bandwidth fraction: the weight bytes one decode "
                                          "step reads (every matrix product's weight once; of an MoE's experts, "
                                          "the routed ones' share) times tokens/s, over the bandwidth a "
                                          "streaming read of a 256 MiB buffer reaches here with the same "
                                          "threads (median of 5).")
    add_model_args(p)
    p.add_argument("-p", "--n-prompt", type=_counts, default=[512], metavar="N[,N...]",
                   help="prompt tokens for the pp tests, 0 to skip (default: 512)")
    p.add_argument("-n", "--n-gen", type=_counts, default=[128], metavar="N[,N...]",
                   help="generated tokens for the tg tests, 0 to skip (default: 128)")
    p.add_argument("-d", "--n-depth", type=_counts, default=[0], metavar="N[,N...]",
                   help="tokens already in the context before each test (untimed), as llama-bench's -d; the plan "
                        "and bandwidth lines are for depth 0 only (default: 0). Like llama-bench's, -p, -n and -d "
                        "take comma-separated lists: every test at every depth")
    p.add_argument("-r", "--repetitions", type=int, default=5, help="repetitions of each test (default: 5)")
    p.add_argument("--llama-bench", metavar="PATH", help="llama.cpp's llama-bench binary to compare against")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmcore.tools.bench import run_bench

    threads = args.threads or max(1, (os.cpu_count() or 2))
    args.threads = threads
    llm = load_llm(args)
    tests = [(kind, n, depth) for kind, counts in (("pp", args.n_prompt), ("tg", args.n_gen))
             for n in counts if n > 0 for depth in args.n_depth]
    results = run_bench(llm, tests, args.repetitions, threads, args.llama_bench,
                        on_rep=lambda msg: print(f"bench: {msg}", file=sys.stderr))
    model = llm.model
    name = f"{model.hparams.arch} {model.metadata.get('general.size_label', '')} {_file_type(model)}".strip()
    print(f"| {'model':30} | {'size':>10} | {'params':>10} | {'backend':10} | {'threads':>7} | {'test':>13} | {'t/s':>20} |")
    print(f"| {'-' * 30} | {'-' * 9}: | {'-' * 9}: | {'-' * 10} | {'-' * 6}: | {'-' * 12}: | {'-' * 19}: |")
    for r in results:
        backend = llm.backend.name if r.engine == "llmcore" else "llama.cpp"
        print(f"| {name:30} | {model.size_bytes / 2**20:6.2f} MiB | {model.n_params / 1e6:8.2f} M | {backend:10} | "
              f"{threads:7d} | {r.test:>13} | {r.median:11.2f} ± {r.stdev:6.2f} |")
    if args.llama_bench:
        for ours, theirs in zip(results[::2], results[1::2]):
            print(f"{ours.test}: llmcore/llama.cpp = {ours.median / theirs.median:.2f}x "
                  f"(medians of {len(ours.samples)} interleaved repetitions)")
    # the plan's speeds and the weight bytes per token are an empty cache's: the first test of each kind at depth 0
    first: dict[str, BenchResult] = {}
    for r in results:
        if r.engine == "llmcore" and not r.depth:
            first.setdefault(r.kind, r)
    _print_plan_speed(llm, first.get("pp"), first.get("tg"))
    if "tg" in first:
        tg = first["tg"]
        _print_bandwidth_fraction(llm, [r for r in results if (r.kind, r.n, r.depth) == ("tg", tg.n, 0)], threads)
    return 0


def _counts(text: str) -> list[int]:
    """llama-bench's list of counts: "512" or "0,1024,4096", each 0 or more"""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of token counts: {text!r}") from None
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError(f"token counts are 0 or more: {text!r}")
    return counts


def _print_bandwidth_fraction(llm, decode_results: list, threads: int) -> None:
    """How close decode comes to the memory-bandwidth limit: weight bytes per token x tokens/s over
    the bandwidth of a streaming read on ``threads`` threads."""
    from llmcore.tools.bench import STREAM_REPEATS, decode_weight_bytes, streaming_read_bandwidth

    if not decode_results:
        return
    per_token = decode_weight_bytes(llm.model, llm.plan.graph(1))
    bandwidth = streaming_read_bandwidth(threads)
    print(f"decode reads {per_token / 1e6:.3f} MB of weights per token; streaming read {bandwidth / 1e9:.3f} GB/s "
          f"({threads} threads, median of {STREAM_REPEATS}): limit {bandwidth / per_token:.1f} t/s")
    for r in decode_results:
        engine = llm.backend.name if r.engine == "llmcore" else "llama.cpp"
        print(f"{r.test} {engine}: {r.median:.2f} t/s x {per_token / 1e6:.3f} MB = "
              f"{r.median * per_token / 1e9:.3f} GB/s, {r.median * per_token / bandwidth:.3f} of the memory bandwidth")


def _print_plan_speed(llm, pp: BenchResult | None, tg: BenchResult | None) -> None:
    """``llmcore plan``'s expected speeds beside the measured ones (our pp and tg results from an
    empty cache, either None); a measured speed over 1.3x the expected one (a calibration timed on a
    busy machine) or under half of it measures the calibration again before they are printed."""
    from llmcore.engine.plan import DECODE_TOKENS, Speed

    if pp is None and tg is None:
        return
    speed = Speed(pp.median if pp else 0.0, tg.median if tg else 0.0, pp.n if pp else llm.plan.n_batch,
                  n_gen=tg.n if tg else DECODE_TOKENS)
    if llm.plan.speed_missed(speed):
        print("plan: measured speed over 1.3x or under 0.5x the calibrated estimate: calibrating again",
              file=sys.stderr)
    expected = llm.plan.speed(speed.n_prompt, speed.n_gen)
    for test, value, guess in (("pp", speed.prompt_tokens_per_s, expected.prompt_tokens_per_s),
                               ("tg", speed.decode_tokens_per_s, expected.decode_tokens_per_s)):
        if value:
            print(f"{test}: llmcore plan expected {guess:.1f} t/s, measured {value:.1f} ({value / guess:.2f}x)")


def _file_type(model) -> str:
    """The quantization as llama-bench names it ("Q4_K - Medium"): the file's general.file_type, or
    else the type holding most of the weights."""
    ftype = model.metadata.get("general.file_type")
    try:
        name = gguf.LlamaFileType(ftype).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        name = None
    if name and name != "GUESSED":
        size = {"S": "Small", "M": "Medium", "L": "Large"}.get(name.rsplit("_", 1)[-1]) if "_K_" in name else None
        return f"{name.rsplit('_', 1)[0]} - {size}" if size else name
    types: dict[str, int] = {}
    for t in model.reader.tensors.values():
        types[t.type.name] = types.get(t.type.name, 0) + t.n_elements
    return max(types, key=types.get)
