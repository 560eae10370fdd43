"""Turning token ids back into text: llama.cpp's detokenize and a streaming UTF-8-safe decoder."""

from __future__ import annotations

import codecs
from collections.abc import Callable


def clean_up_spaces(text: bytes) -> bytes:
    """llama.cpp's clean_spaces passes (clean_up_tokenization_spaces) over detokenized bytes."""
    # " ?", " !", " .", " ," lose their space
    out = bytearray(text[:1])
    for i in range(1, len(text)):
        if text[i - 1] == 0x20 and text[i] in b"?!.,":
            out.pop()
        out.append(text[i])
    # " ' " -> "'": a lone apostrophe between spaces loses both
    text, out = bytearray(out), bytearray(out[:1])
    i = 1
    while i < len(text):
        x = text[i]
        if x == 0x27 and i + 1 < len(text) and text[i - 1] == 0x20 and text[i + 1] == 0x20:
            out.pop()
            out.append(x)
            text[i + 1] = 0  # llama.cpp blanks the skipped space, so it no longer counts as one
            i += 2
            continue
        out.append(x)
        i += 1
    # " 's", " 'm", " 're", " 've" lose their space
    text, out = bytes(out), bytearray(out[:1])
    for i in range(1, len(text)):
        x = text[i]
        if text[i - 1] == 0x20 and x == 0x27 and i + 1 < len(text):
            x1 = text[i + 1]
            if x1 in b"sm" or (i + 2 < len(text) and text[i + 1:i + 3] in (b"re", b"ve")):
                out.pop()
        out.append(x)
    return bytes(out)


class StreamDecoder:
    """Decodes tokens one at a time into text, holding back an incomplete UTF-8 character.

    Invalid byte sequences become U+FFFD, as in a ``errors="replace"`` decode of the whole stream.
    An unfinished character where the stream ends (a reply cut by its token limit inside a
    multi-byte character) is dropped, as llama-cpp-python drops it, not shown as U+FFFD.
    """

    def __init__(self, piece: Callable[[int], bytes]) -> None:
        self._piece = piece
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The new complete characters after adding ``token_id`` (possibly empty)."""
        return self._decoder.decode(self._piece(token_id))

    def reset(self) -> None:
        """End the stream: an unfinished character held back is dropped (bytes that cannot start
        or continue a character were already given as U+FFFD, so nothing else is held)."""
        self._decoder.reset()
