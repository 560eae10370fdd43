"""``llmcore quantize [options] MODEL_IN [MODEL_OUT] TYPE [NTHREADS]``: llama-quantize.

TYPE is one of llama-quantize's file types (``--help`` lists them) or its number; without MODEL_OUT
the result is ``ggml-model-TYPE.gguf`` beside MODEL_IN. The file is byte for byte llama-quantize's
for the same input and options.
"""

from __future__ import annotations

import argparse
import os
import sys


def _type_list() -> str:
    from llmcore.quants import TARGET_TYPES
    from llmcore.tools.quantize import FILE_TYPES

    lines = ["allowed quantization types:", ""]
    for file_type in FILE_TYPES:
        number = "          " if file_type.name == "COPY" else f"  {file_type.ftype.value:2d}  or  "
        missing = "" if file_type.default_type in TARGET_TYPES else "  (not supported yet)"
        lines.append(f"{number}{file_type.name:<7} : {file_type.description}{missing}")
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize",
        help="quantize a GGUF model to Q4_K_M, Q8_0, ... (llama-quantize)",
        description="Quantize MODEL_IN to TYPE, writing MODEL_OUT (default: ggml-model-TYPE.gguf beside "
        "MODEL_IN) byte for byte as llama.cpp's llama-quantize does, with NTHREADS threads (default: all).",
        epilog=_type_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--allow-requantize", action="store_true",
                   help="allow requantizing tensors that have already been quantized (this can severely "
                   "reduce quality compared to quantizing from 16 or 32 bit)")
    p.add_argument("--leave-output-tensor", action="store_true", help="leave output.weight un(re)quantized")
    p.add_argument("--pure", action="store_true",
                   help="disable k-quant mixtures and quantize all tensors to the same type")
    p.add_argument("--imatrix", metavar="FILE", help="use the importance matrix in FILE (GGUF or legacy .dat)")
    p.add_argument("--include-weights", metavar="NAME", action="append", default=[],
                   help="use the importance matrix only for tensors whose names contain NAME (repeatable)")
    p.add_argument("--exclude-weights", metavar="NAME", action="append", default=[],
                   help="do not use the importance matrix for tensors whose names contain NAME (repeatable)")
    p.add_argument("--output-tensor-type", metavar="GGML_TYPE", type=_ggml_type,
                   help="use this ggml type for the output.weight tensor")
    p.add_argument("--token-embedding-type", metavar="GGML_TYPE", type=_ggml_type,
                   help="use this ggml type for the token embeddings tensor")
    p.add_argument("--tensor-type", metavar="NAME=GGML_TYPE", action="append", default=[], type=_tensor_type,
                   help="quantize the tensors whose names match the regex NAME to GGML_TYPE (repeatable), "
                   "e.g. attn_q=q8_0")
    p.add_argument("--tensor-type-file", metavar="FILE",
                   help="NAME=GGML_TYPE pairs separated by spaces or newlines, as --tensor-type")
    p.add_argument("--override-kv", metavar="KEY=TYPE:VALUE", action="append", default=[], type=_kv_override,
                   help="set a metadata key in the quantized model (TYPE: int, float, bool, str; repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="show the type and size of every tensor and the final size, without quantizing")
    p.add_argument("--max-buffer-size", metavar="MiB", type=_mebibytes,
                   help="accepted for llama-quantize's command lines; llmcore converts at most 64 MiB of rows "
                   "at a time")
    p.add_argument("--prune-layers", metavar="L0,L1,...", help="not supported yet")
    p.add_argument("--keep-split", action="store_true", help="not supported yet")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("positional", nargs="+", metavar="MODEL_IN [MODEL_OUT] TYPE [NTHREADS]",
                   help="the input GGUF, the output (optional), the file type, the number of threads (optional)")
    p.set_defaults(func=run)


def _ggml_type(text: str):
    from llmcore.tools.quantize import parse_ggml_type

    ggml_type = parse_ggml_type(text)
    if ggml_type is None:
        raise argparse.ArgumentTypeError(f"invalid ggml_type {text!r}")
    return ggml_type


def _tensor_type(text: str) -> tuple[str, object]:
    name, sep, type_name = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"malformed tensor type {text!r}: NAME=GGML_TYPE")
    if not name:
        raise argparse.ArgumentTypeError("missing tensor name")
    if not type_name:
        raise argparse.ArgumentTypeError("missing quantization type")
    return name.lower(), _ggml_type(type_name)


def _kv_override(text: str):
    from llmcore.tools.quantize import parse_kv_override

    try:
        return parse_kv_override(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _mebibytes(text: str) -> int:
    """``atoi(text)``, which must be positive."""
    from llmcore.tools.quantize import parse_leading_int

    if (parse_leading_int(text) or 0) <= 0:
        raise argparse.ArgumentTypeError(f"invalid --max-buffer-size {text!r}")
    return parse_leading_int(text)


def _paths_and_type(args: argparse.Namespace):
    """llama-quantize's reading of its positional arguments: IN, then TYPE or OUT TYPE, then NTHREADS."""
    from llmcore.errors import LLMCoreError
    from llmcore.tools.quantize import parse_file_type

    words = args.positional
    if len(words) < 2:
        raise LLMCoreError("bad arguments: MODEL_IN [MODEL_OUT] TYPE [NTHREADS]")
    source, rest = words[0], words[1:]
    file_type = parse_file_type(rest[0])
    if file_type is not None:
        output = os.path.join(os.path.dirname(source), f"ggml-model-{file_type.name}.gguf")
        rest = rest[1:]
    else:
        if len(rest) < 2:
            raise LLMCoreError(f"unknown quantization type {rest[0]!r} (see llmcore quantize --help)")
        output, file_type = rest[0], parse_file_type(rest[1])
        if file_type is None:
            raise LLMCoreError(f"invalid ftype {rest[1]!r} (see llmcore quantize --help)")
        rest = rest[2:]
    n_threads = 0
    if rest:
        try:
            n_threads = int(rest[0])
        except ValueError:
            raise LLMCoreError(f"invalid nthread {rest[0]!r}") from None
    if len(rest) > 1:
        raise LLMCoreError(f"unexpected argument {rest[1]!r}")
    return source, output, file_type, n_threads


def run(args: argparse.Namespace) -> int:
    from llmcore.errors import LLMCoreError
    from llmcore.gguf import GGUFReader
    from llmcore.tools.quantize import (
        QuantizeOptions, load_imatrix, plan_quantization, size_summary, write_quantized,
    )

    for flag in ("prune_layers", "keep_split"):
        if getattr(args, flag):
            raise LLMCoreError(f"--{flag.replace('_', '-')} is not supported yet")
    source, output, file_type, n_threads = _paths_and_type(args)
    if args.include_weights and args.exclude_weights:
        raise LLMCoreError("--include-weights and --exclude-weights cannot be used together")
    tensor_types = list(args.tensor_type)
    if args.tensor_type_file:
        try:
            with open(args.tensor_type_file) as handle:
                words = handle.read().split()
        except OSError as error:
            raise LLMCoreError(f"failed to open file {args.tensor_type_file!r}: {error.strerror}") from None
        try:
            tensor_types += [_tensor_type(word) for word in words]
        except argparse.ArgumentTypeError as error:
            raise LLMCoreError(f"{args.tensor_type_file}: {error}") from None
    imatrix = load_imatrix(args.imatrix, args.include_weights, args.exclude_weights) if args.imatrix else None
    if not args.dry_run and os.path.exists(source) and os.path.exists(output) and os.path.samefile(source, output):
        raise LLMCoreError(f"input and output files are the same: {source!r}")
    options = QuantizeOptions(
        file_type, allow_requantize=args.allow_requantize, quantize_output_tensor=not args.leave_output_tensor,
        pure=args.pure, output_tensor_type=args.output_tensor_type, token_embedding_type=args.token_embedding_type,
        tensor_types=tensor_types, imatrix=imatrix, kv_overrides=list(args.override_kv), n_threads=n_threads,
    )
    what = f"calculating quantization size for {source!r}" if args.dry_run else f"quantizing {source!r} to {output!r}"
    print(f"llmcore quantize: {what} as {file_type.name}" + (f" using {n_threads} threads" if n_threads > 0 else ""),
          file=sys.stderr)
    with GGUFReader(source, decode_strings=False) as reader:  # the vocabulary is copied, never read
        plan = plan_quantization(reader, options)
        for warning in plan.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.dry_run:
            for tensor in plan.tensors:
                info = tensor.source
                print(f"{info.name:<36} - [{', '.join(f'{d:5d}' for d in info.ne)}], type = {info.type.name:>6}, "
                      f"size = {info.n_bytes / 1048576:8.3f} MiB -> {tensor.n_bytes / 1048576:8.3f} MiB "
                      f"({tensor.type.name})")
        else:
            try:
                write_quantized(plan, reader, output, n_threads=n_threads, progress=not args.no_progress)
            except OSError as error:
                raise LLMCoreError(f"{error.filename or output}: {error.strerror or error}") from None
    print(size_summary(plan), file=sys.stderr)
    return 0
