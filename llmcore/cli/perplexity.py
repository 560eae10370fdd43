"""``llmcore perplexity``: llama-perplexity's measurement over a text file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmcore.cli._common import add_model_args, load_llm
from llmcore.errors import LLMCoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("perplexity", help="perplexity of a model over a text file (llama-perplexity)",
                              description="Perplexity over a text file, computed as llama.cpp's llama-perplexity "
                                          "does: chunks of -c tokens, the second half of each scored.")
    add_model_args(p, n_ctx=512)
    p.add_argument("-f", "--file", required=True, help="text file to evaluate")
    p.add_argument("--chunks", type=int, default=-1, help="max number of chunks to process (default: -1, all)")
    p.set_defaults(func=run, batch_size=2048)  # llama-perplexity's default -b


def run(args: argparse.Namespace) -> int:
    from llmcore.tools.perplexity import perplexity

    try:
        text = Path(args.file).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise LLMCoreError(f"cannot read {args.file}: {error.strerror}") from None
    n_ctx = args.ctx_size
    args.batch_size = min(args.batch_size, n_ctx)
    llm = load_llm(args)
    print(f"perplexity: calculating perplexity over chunks of n_ctx={n_ctx}, batch_size={args.batch_size}", file=sys.stderr)
    result = perplexity(llm, text, n_ctx, args.batch_size, args.chunks,
                        on_chunk=lambda i, ppl: print(f"[{i}]{ppl:.4f},", end="", flush=True))
    print()
    print(f"Final estimate: PPL = {result.ppl:.4f} +/- {result.uncertainty:.5f}")
    return 0
