"""RWKV "world" tokenizer (llm_tokenizer_rwkv_session): greedy longest match over escaped byte strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # vocab.py imports unescape_rwkv_token from here when it makes an RWKV piece
    from llmcore.tokenizer.vocab import Vocab

_ESCAPES = {ord("t"): 0x09, ord("n"): 0x0A, ord("r"): 0x0D}


def unescape_rwkv_token(escaped: str) -> bytes:
    """llama_unescape_rwkv_token: the token text is a Python-style escaped byte string."""
    out = bytearray()
    escaping = False
    hex_left = 0
    value = 0
    for byte in escaped.encode("utf-8", "surrogatepass"):
        if hex_left:
            value = (value << 4) + (byte - ord("a") + 10 if byte >= ord("a") else byte - ord("0"))
            hex_left -= 1
            if not hex_left:
                out.append(value & 0xFF)
                value = 0
        elif escaping:
            if byte == ord("x"):
                hex_left = 2
            else:
                out.append(_ESCAPES.get(byte, byte))
            escaping = False
        elif byte == ord("\\"):
            escaping = True
        else:
            out.append(byte)
    return bytes(out)


class RwkvEncoder:
    """Tokenizes one text fragment of an RWKV vocabulary."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.trie: dict[int, dict] = {}
        for token_id, text in enumerate(vocab.texts):
            node = self.trie
            for byte in unescape_rwkv_token(text):
                node = node.setdefault(byte, {})
            node[-1] = token_id

    def encode(self, text: str) -> list[int]:
        data = text.encode("utf-8", "surrogatepass")
        out: list[int] = []
        pos = 0
        unk = self.vocab.unk_id if self.vocab.unk_id is not None else -1
        while pos < len(data):
            node = self.trie.get(data[pos])
            if node is None:
                out.append(unk)
                pos += 1
                continue
            token_id, token_end = 0, 0
            while node is not None:
                if -1 in node:
                    token_id, token_end = node[-1], pos + 1
                if pos + 1 >= len(data):
                    break
                pos += 1
                node = node.get(data[pos])
            out.append(token_id)
            # a path with no token on it would make llama.cpp loop forever; step one byte instead
            pos = token_end or pos + 1
        return out
