"""The ``llmcore`` command line.

Each subcommand is a module in this package that defines ``add_parser(subparsers)`` (registering its
flags and ``set_defaults(func=run)``) and ``run(args) -> int``. Modules import heavy dependencies
inside ``run`` so that ``llmcore --help`` and argument errors stay instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from llmcore.errors import LLMCoreError


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line on stderr and exit code 2, like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llmcore",
        description="Run, serve, inspect and quantize GGUF language models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LLMCoreError as error:
        print(f"llmcore {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
