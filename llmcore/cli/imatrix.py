"""``llmcore imatrix -m MODEL -f TEXT [-o imatrix.gguf]``: llama-imatrix's importance matrix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmcore.cli._common import _positive_int, add_model_args, load_llm
from llmcore.errors import LLMCoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "imatrix", help="compute an importance matrix for quantizing (llama-imatrix)",
        description="Collect the squared activations entering each weight matrix of a model over a text, as "
        "llama.cpp's llama-imatrix does (chunks of -c tokens, each from an empty cache with BOS first, -b/-c of "
        "them at a time), and write them as its GGUF file (or its legacy format) for `llmcore quantize --imatrix`. "
        "The perplexity of each chunk's second half is printed as it goes.")
    add_model_args(p, n_ctx=512)
    p.add_argument("-ub", "--ubatch-size", type=_positive_int, default=512, metavar="N",
                   help="physical maximum batch size (default: 512)")
    g = p.add_argument_group("importance matrix")
    g.add_argument("-f", "--file", help="the text to evaluate (without it, --in-file matrices are combined)")
    g.add_argument("-o", "--output", "--output-file", default="imatrix.gguf", metavar="FNAME",
                   help="output file (default: 'imatrix.gguf')")
    g.add_argument("--output-format", choices=("gguf", "dat"), default=None,
                   help="output format for imatrix file (default: gguf)")
    g.add_argument("--chunks", type=int, default=-1, metavar="N",
                   help="max number of chunks to process (default: -1, all)")
    g.add_argument("--chunk", "--from-chunk", dest="from_chunk", type=int, default=0, metavar="N",
                   help="start processing the input from chunk N (default: 0)")
    g.add_argument("-ofreq", "--output-frequency", type=_positive_int, default=10, metavar="N",
                   help="output the imatrix every N iterations (default: 10)")
    g.add_argument("--save-frequency", type=int, default=0, metavar="N",
                   help="save an imatrix copy every N iterations (default: 0)")
    g.add_argument("--process-output", action="store_true", help="collect data for the output tensor (default: false)")
    g.add_argument("--ppl", action=argparse.BooleanOptionalAction, default=True,
                   help="whether to compute perplexity (default: true)")
    g.add_argument("--in-file", action="append", default=[], metavar="FNAME",
                   help="previous imatrix files to start from or combine (repeatable, or separated by commas)")
    g.add_argument("--parse-special", action="store_true",
                   help="parse special tokens (chat, tool, etc) (default: false)")
    p.set_defaults(func=run, batch_size=2048)  # llama-imatrix's default -b


def run(args: argparse.Namespace) -> int:
    from llmcore.tools.imatrix import ImatrixOptions, run_imatrix

    in_files = [name for value in args.in_file for name in value.split(",") if name]
    for name in in_files:
        if not Path(name).is_file():
            raise LLMCoreError(f"--in-file: failed to open file '{name}'")
    text = None
    if args.file is not None:
        try:
            text = Path(args.file).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise LLMCoreError(f"cannot read {args.file}: {error.strerror}") from None
        text = text.removesuffix("\n")  # as llama.cpp's -f
    options = ImatrixOptions(
        out_file=args.output, output_format=args.output_format, n_ctx=args.ctx_size, n_batch=args.batch_size,
        n_ubatch=args.ubatch_size, n_chunks=args.chunks, from_chunk=args.from_chunk, compute_ppl=args.ppl,
        process_output=args.process_output, parse_special=args.parse_special,
        output_frequency=args.output_frequency, save_frequency=args.save_frequency,
        dataset=args.file or "", in_files=in_files)
    llm = None
    if text is not None:
        args.ctx_size = options.context_size
        args.batch_size = min(args.batch_size, options.n_seq * options.n_ctx)
        llm = load_llm(args)
        print(f"imatrix: computing over chunks of n_ctx={options.n_ctx}, batch_size={args.batch_size}, "
              f"n_seq={options.n_seq}", file=sys.stderr)
    result = run_imatrix(llm, text, options,
                         on_chunk=lambda i, ppl: print(f"[{i}]{ppl:.4f},", end="", flush=True))
    if result is not None:
        print()
        if result.ppl is not None and result.uncertainty is not None:
            print(f"Final estimate: PPL = {result.ppl:.4f} +/- {result.uncertainty:.5f}")
    print(f"imatrix: saved to '{options.out_file}'", file=sys.stderr)
    return 0
