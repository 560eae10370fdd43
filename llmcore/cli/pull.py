"""``llmcore pull REF``: download a model into the cache and print its path."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pull",
        help="download a model into the cache",
        description="Download a model into the cache (resumable, checksummed) and print its path.",
    )
    parser.add_argument(
        "ref", metavar="REF", nargs="?",
        help="a URL, hf://owner/repo/file.gguf, owner/repo/file.gguf or owner/repo[:QUANT] "
        "(default: the default model)",
    )
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmcore.hub import HubError, default_model_path, pull

    progress = not args.no_progress
    if args.ref is None:
        if args.sha256:
            raise HubError("--sha256 needs a REF (the default model's checksum is built in)")
        path = default_model_path(progress=progress)
    else:
        path = pull(args.ref, progress=progress, sha256=args.sha256)
    print(path)
    return 0
