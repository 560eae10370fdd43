"""The ``llmcore`` command line.

Each subcommand is a module in this package that defines ``add_parser(subparsers)`` (registering its
flags and ``set_defaults(func=run)``) and ``run(args) -> int``. Modules import heavy dependencies
inside ``run`` so that ``llmcore --help`` and argument errors stay instant; a command whose module is
named after it (``gguf-split``: ``gguf_split.py``) is parsed after importing that module alone.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from llmcore.errors import LLMCoreError


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line on stderr and exit code 2, like every other user error. Flags
    are matched whole, as llama.cpp matches them: no abbreviations (``--temp`` is not
    ``--temperature``'s prefix) and no values glued to short flags (``-fa`` is not ``-f a``,
    ``-ctv`` not ``-c tv``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)
        if self.add_help:
            self.add_argument("--usage", action="help", help=argparse.SUPPRESS)  # llama.cpp's third name of -h

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _get_option_tuples(self, option_string: str) -> list:
        # argparse's only source of prefix matches and glued short values; allow_abbrev=False
        # leaves the glued values on
        return []


class _CommandParser(_Parser):
    """A subcommand's parser: a llama.cpp flag it does not have is named as not supported yet,
    before argparse reports whatever else that flag's absence causes (a missing value, a
    required flag)."""

    def parse_known_args(self, args, namespace=None):  # type: ignore[override]
        from llmcore.cli.llama_flags import LLAMA_CPP_FLAGS

        for arg in args:
            if arg == "--":
                break
            flag = arg.split("=", 1)[0]
            if flag in LLAMA_CPP_FLAGS and flag not in self._option_string_actions:
                self.error(f"flag {flag} (llama.cpp's {LLAMA_CPP_FLAGS[flag]}) is not supported yet")
        return super().parse_known_args(args, namespace)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only ``command``'s parser when its module bears its name (each
    subcommand module imports what its flags need: the others' cost nothing then)."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    module_name = command.replace("-", "_") if command else None
    parser, commands = _new_parser([module_name] if module_name in names else names)
    if module_name in names and command not in commands:
        parser, _ = _new_parser(names)
    return parser


def _new_parser(module_names: list[str]) -> tuple[argparse.ArgumentParser, set[str]]:
    parser = _Parser(
        prog="llmcore",
        description="Download, run, serve, benchmark and inspect GGUF language models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in module_names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser, set(subparsers.choices)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else None)
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
