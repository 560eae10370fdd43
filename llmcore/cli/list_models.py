"""``llmcore list``: the models in the cache, with size, checksum prefix and source."""

from __future__ import annotations

import argparse

from llmcore.cli.pull import CATALOG_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list", help="list cached models", description="List the models in the model cache.",
        epilog=CATALOG_HELP + "; `llmcore pull NAME` or `-m NAME` fetches one",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmcore.hub import list_cached

    rows = [("NAME", "SIZE", "SHA256", "SOURCE")]
    rows += [
        (model.name, _human_size(model.size), (model.sha256 or "-")[:12], model.source or "-")
        for model in list_cached()
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
