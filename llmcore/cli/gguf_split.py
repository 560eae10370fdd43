"""``llmcore gguf-split [options] GGUF_IN GGUF_OUT``: llama-gguf-split's split and merge.

``--split`` (the default) writes ``GGUF_OUT-00001-of-0000N.gguf`` ... from the file GGUF_IN;
``--merge`` reads the splits starting at GGUF_IN (``...-00001-of-0000N.gguf``) and writes the one
file GGUF_OUT, which must not exist. The files are byte for byte llama-gguf-split's; its messages
go to the same streams (the plan on stdout, the summary on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gguf-split",
        help="split a GGUF into several files, or merge them (llama-gguf-split)",
        description="Split a GGUF into GGUF_OUT-00001-of-0000N.gguf files, or merge such files into "
        "GGUF_OUT; the files are byte for byte llama.cpp's llama-gguf-split's.",
    )
    operation = p.add_mutually_exclusive_group()
    operation.add_argument("--split", dest="merge", action="store_false", default=False,
                           help="split GGUF to multiple GGUF (enabled by default)")
    operation.add_argument("--merge", dest="merge", action="store_true", default=False,
                           help="merge multiple GGUF to a single GGUF")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--split-max-tensors", type=_positive_int, metavar="N",
                       help="max tensors in each split (default: 128)")
    limit.add_argument("--split-max-size", type=_size, metavar="N(M|G)",
                       help="max size per split, decimal megabytes or gigabytes (500M, 2G)")
    p.add_argument("--no-tensor-first-split", action="store_true",
                   help="do not add tensors to the first split (disabled by default)")
    p.add_argument("--dry-run", action="store_true",
                   help="only print out a split plan and exit, without writing any new files")
    p.add_argument("--delete-splits", action="store_true",
                   help="delete the split files during merge to free up disk space (unsafe: a failed merge "
                   "leaves neither the splits nor the merged file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("input", metavar="GGUF_IN", help="--split: the GGUF to split; --merge: its first split")
    p.add_argument("output", metavar="GGUF_OUT",
                   help="--split: the prefix of the splits' names; --merge: the merged file")
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of tensors")
    return value


def _size(text: str) -> int:
    from llmcore.tools.gguf_split import parse_split_size

    try:
        return parse_split_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    from llmcore.errors import LLMCoreError
    from llmcore.gguf import GGUFReader
    from llmcore.tools.gguf_split import plan_merge, plan_split, size_in_megabytes, write_outputs

    if args.merge:
        print(f"gguf_merge: {args.input} -> {args.output}", file=sys.stderr)
        if os.path.lexists(args.output):
            raise LLMCoreError(f"output file {args.output} already exists")
    with GGUFReader(args.input) as reader:
        if args.merge:
            outputs = [plan_merge(reader, args.output)]
        else:
            outputs = plan_split(reader, args.output, max_tensors=args.split_max_tensors,
                                 max_bytes=args.split_max_size, no_tensor_first_split=args.no_tensor_first_split)
            print(f"n_split: {len(outputs)}")
            for index, output in enumerate(outputs, 1):
                print(f"split {index:05d}: n_tensors = {len(output.tensors)}, total_size = {size_in_megabytes(output)}M")
        sources = reader.part_paths
    if not args.dry_run:
        def written(output) -> None:
            if not args.merge:
                print(f"Writing file {output.path} ... done", flush=True)

        try:
            write_outputs(outputs, sources, progress=not args.no_progress, on_file=written,
                          delete_sources=args.merge and args.delete_splits)
        except OSError as error:
            raise LLMCoreError(f"{error.filename or args.output}: {error.strerror or error}") from None
    n_tensors = sum(len(output.tensors) for output in outputs)
    if args.merge:
        print(f"gguf_merge: {args.output} merged from {len(sources)} split with {n_tensors} tensors.", file=sys.stderr)
    else:
        print(f"gguf_split: {len(outputs)} gguf split written with a total of {n_tensors} tensors.", file=sys.stderr)
    return 0
