"""The sampling flags, derived from :class:`~llmcore.engine.sampling.SamplingParams`: each field
that names llama.cpp flags becomes them, with its help and its default written once, there. A
flag left out leaves the field at that default; the constraint flags (grammar, JSON schema) sit
beside them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from llmcore.engine.sampling import SamplingParams
from llmcore.errors import LLMCoreError

_LOGIT_BIAS = re.compile(r"^(\d+)([+-].+)$")
#: --sampling-seq's letters (llama.cpp's common_sampler_type_to_chr)
_SAMPLER_LETTERS = {"e": "penalties", "d": "dry", "s": "top_n_sigma", "k": "top_k", "y": "typ_p", "p": "top_p",
                    "m": "min_p", "x": "xtc", "t": "temperature"}


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    s = parser.add_argument_group("sampling (llama.cpp's flags and defaults)")
    for name, field in SamplingParams.model_fields.items():
        extra = field.json_schema_extra or {}
        if not extra.get("flags"):
            continue
        help_text = f"{field.description} (default: {_shown(field.default)})"
        s.add_argument(*extra["flags"], dest=name, default=None, metavar=extra.get("metavar") or "N", help=help_text,
                       **_parsing(name, field.annotation))
    s.add_argument("--sampling-seq", "--sampler-seq", dest="samplers", type=_sampling_seq, default=None,
                   metavar="SEQUENCE", help="the samplers as letters, llama.cpp's: " + ", ".join(
                       f"{letter} {name}" for letter, name in _SAMPLER_LETTERS.items()) + " (default: edskypmxt)")
    c = parser.add_argument_group("constrained output")
    c.add_argument("--grammar", metavar="GBNF", help="GBNF grammar the output must follow")
    c.add_argument("--grammar-file", metavar="FNAME", help="file with a GBNF grammar")
    c.add_argument("-j", "--json-schema", metavar="SCHEMA", help="JSON schema the output must follow")
    c.add_argument("-jf", "--json-schema-file", metavar="FNAME", help="file with a JSON schema")


def sampling_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``LLM.sampler`` keywords the flags give: the sampling fields set, and the constraint."""
    grammar = _read(args.grammar_file) if args.grammar_file else args.grammar
    schema = _read(args.json_schema_file) if args.json_schema_file else args.json_schema
    constraint = {"grammar": grammar} if grammar else {"json_schema": schema} if schema else {}
    settings = {name: getattr(args, name) for name in SamplingParams.model_fields
                if getattr(args, name, None) is not None}
    if "logit_bias" in settings:
        settings["logit_bias"] = dict(settings["logit_bias"])
    if "dry_sequence_breakers" in settings:  # llama.cpp: the flag replaces the defaults; "none" clears
        settings["dry_sequence_breakers"] = tuple(b for b in settings["dry_sequence_breakers"] if b != "none")
    return constraint | settings


def _sampling_seq(text: str) -> tuple[str, ...]:
    unknown = sorted(set(text) - set(_SAMPLER_LETTERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sampler letter(s) {''.join(unknown)!r}; known: "
                                         f"{''.join(_SAMPLER_LETTERS)} (llama.cpp's i and a are not supported yet)")
    return tuple(_SAMPLER_LETTERS[letter] for letter in text)


def _parsing(name: str, annotation: Any) -> dict[str, Any]:
    """argparse's type/action for a field, from its annotation."""
    if name == "logit_bias":
        return {"type": _logit_bias, "action": "append"}
    if name == "samplers":
        return {"type": lambda text: tuple(part for part in text.split(";") if part)}
    if annotation == tuple[str, ...]:
        return {"action": "append"}
    if annotation in (int, int | None):
        return {"type": int}
    if annotation is float:
        return {"type": float}
    raise TypeError(f"sampling field {name}: no command-line form for {annotation}")


def _logit_bias(text: str) -> tuple[int, float]:
    """llama.cpp's TOKEN_ID(+/-)BIAS, e.g. 15043+1, 15043-1 or 15043-inf."""
    match = _LOGIT_BIAS.match(text)
    try:
        return int(match[1]), float(match[2])
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not TOKEN_ID(+/-)BIAS, e.g. 15043+1") from None


def _shown(default: Any) -> str:
    if default is None:
        return "-1, random"
    if isinstance(default, tuple):
        return ";".join(default) if default and len(default[0]) > 2 else ", ".join(repr(d) for d in default)
    if isinstance(default, dict):
        return "none"
    return str(default)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise LLMCoreError(f"cannot read {path}: {error.strerror}") from None
