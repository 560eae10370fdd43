"""Code point classes exactly as llama.cpp's unicode.cpp sees them.

llama.cpp classifies code points with its own table (``_unicode_tables``), not with the host's
Unicode database, so the pre-tokenizers and WordPiece normaliser read everything from here.
"""

from __future__ import annotations

import base64
import zlib
from functools import cache

import numpy as np

from llmcore.tokenizer import _unicode_tables as _tables

MAX_CODEPOINTS = 0x110000

# Category bits of unicode.h's unicode_cpt_flags.
UNDEFINED = 0x0001
NUMBER = 0x0002
LETTER = 0x0004
SEPARATOR = 0x0008
ACCENT_MARK = 0x0010
PUNCTUATION = 0x0020
SYMBOL = 0x0040
CONTROL = 0x0080

WHITESPACE_CODEPOINTS = frozenset(_tables.WHITESPACE)
WHITESPACE_CHARS = "".join(map(chr, sorted(WHITESPACE_CODEPOINTS)))


def _unpack(blob: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(blob)), dtype=dtype)


@cache
def category_table() -> np.ndarray:
    """uint8 category bits (NUMBER, LETTER, ...) for every code point 0..0x10FFFF."""
    starts = _unpack(_tables.FLAG_RANGE_STARTS, "<u4").astype(np.int64)
    values = _unpack(_tables.FLAG_RANGE_VALUES, "<u2")
    # the last range starts at MAX_CODEPOINTS and only terminates the table
    return np.repeat((values[:-1] & 0xFF).astype(np.uint8), np.diff(starts))


def categories(text: str) -> np.ndarray:
    """Category bits of each code point of ``text``."""
    return category_table()[codepoints(text)]


def codepoints(text: str) -> np.ndarray:
    """The code points of ``text`` as a uint32 array."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def category(cpt: int) -> int:
    """Category bits of one code point."""
    return int(category_table()[cpt]) if cpt < MAX_CODEPOINTS else 0


@cache
def _lowercase_map() -> dict[int, int]:
    pairs = _unpack(_tables.LOWERCASE_PAIRS, "<u4").reshape(-1, 2)
    return dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))


def to_lower(cpt: int) -> int:
    """llama.cpp's unicode_tolower: the simple lowercase mapping of UnicodeData.txt."""
    return _lowercase_map().get(cpt, cpt)


@cache
def _nfd_ranges() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ranges = _unpack(_tables.NFD_RANGES, "<u4").reshape(-1, 3)
    return ranges[:, 0], ranges[:, 1], ranges[:, 2]


def nfd_first(cpts: np.ndarray) -> np.ndarray:
    """llama.cpp's unicode_cpts_normalize_nfd: each code point -> the first code point of its NFD."""
    first, last, nfd = _nfd_ranges()
    index = np.searchsorted(first, cpts, side="right") - 1
    inside = (first[index] <= cpts) & (cpts <= last[index])
    return np.where(inside, nfd[index], cpts).astype(np.uint32)


def _gpt2_byte_chars() -> list[str]:
    """GPT-2's printable stand-in for each byte (bytes_to_unicode)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


BYTE_TO_CHAR: list[str] = _gpt2_byte_chars()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
# str.translate table: a latin-1 decoded byte string -> its GPT-2 byte characters
BYTE_ENCODE_TABLE = {b: c for b, c in enumerate(BYTE_TO_CHAR)}
