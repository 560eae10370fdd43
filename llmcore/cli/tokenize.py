"""``llmcore tokenize -m FILE -p TEXT``: show how a model tokenizes text, like llama.cpp's llama-tokenize.

By default each token is printed as ``%6d -> 'piece'``; ``--ids`` prints the Python list of ids.
BOS (and whatever else the vocabulary adds) is added when the model asks for it, unless ``--no-bos``.
Escapes such as ``\\n`` in the prompt are processed, as llama.cpp does, unless ``--no-escape``.
"""

from __future__ import annotations

import argparse
import string
import sys

from llmcore.errors import LLMCoreError

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "'": "'", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v", "?": "?"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize",
        help="show the tokens of a text",
        description="Tokenize a text with a model's vocabulary (like llama.cpp's llama-tokenize).",
    )
    parser.add_argument("-m", "--model", required=True, metavar="FILE", help="GGUF file (a vocab-only file is enough)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-p", "--prompt", metavar="TEXT", help="text to tokenize")
    source.add_argument("-f", "--file", metavar="FNAME", help="read the text from a file")
    source.add_argument("--stdin", action="store_true", help="read the text from standard input")
    parser.add_argument("--ids", action="store_true", help="print only the Python list of token ids")
    parser.add_argument("--no-bos", action="store_true", help="do not add BOS/EOS even if the model asks for them")
    parser.add_argument("--parse-special", action="store_true",
                        help="turn special-token text such as <|im_start|> into its token")
    parser.add_argument("--no-escape", action="store_true", help="do not process escapes (\\n, \\t, ...) in the text")
    parser.add_argument("--show-count", action="store_true", help="print the number of tokens at the end")
    parser.set_defaults(func=run)


def process_escapes(text: str) -> str:
    """llama.cpp's string_process_escapes: \\n, \\t, \\xHH, ... -> the characters."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            digits = text[i + 2:i + 4]
            if nxt == "x" and len(digits) == 2 and all(h in string.hexdigits for h in digits):
                out.append(chr(int(digits, 16)))
                i += 4
                continue
        out.append(c)
        i += 1
    return "".join(out)


def run(args: argparse.Namespace) -> int:
    from llmcore.tokenizer import Tokenizer

    if args.stdin:
        text = sys.stdin.read()
    elif args.file:
        try:
            with open(args.file, encoding="utf-8", newline="") as handle:
                text = handle.read()
        except OSError as error:
            raise LLMCoreError(f"{args.file}: {error.strerror}") from None
    else:
        text = args.prompt
    if not args.no_escape:
        text = process_escapes(text)

    tokenizer = Tokenizer.from_gguf(args.model)
    add_special = tokenizer.add_bos and not args.no_bos
    ids = tokenizer.tokenize(text, add_special=add_special, parse_special=args.parse_special)
    out = sys.stdout
    if args.ids:
        out.write(f"{ids}\n")
    else:
        out.flush()
        raw = out.buffer
        for token_id in ids:
            raw.write(f"{token_id:6d} -> '".encode() + tokenizer.token_to_piece(token_id) + b"'\n")
        raw.flush()
    if args.show_count:
        out.write(f"Total number of tokens: {len(ids)}\n")
    return 0
