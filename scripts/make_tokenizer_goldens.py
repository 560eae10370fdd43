"""Make randomized tokenizer goldens with llama.cpp (through llama-cpp-python) as the oracle.

For each vocabulary GGUF it writes ``OUT_DIR/<name>.json`` with seeded random strings (mixed scripts,
emoji, whitespace runs, digits, code, the vocabulary's own special-token text) and llama.cpp's answers:
tokenize() with and without special handling, detokenize() with its flags, token_to_piece() of random
ids, and the special token ids. tests/test_tokenizer_oracle.py compares llmcore against them.

Run it with an interpreter that has llama-cpp-python (never a dependency of llmcore itself):
``/work/venv-oracle/bin/python scripts/make_tokenizer_goldens.py OUT_DIR VOCAB.gguf...``
(``--write-rwkv-vocab PATH`` writes the small RWKV vocabulary used as a fixture; ``--write-rwkv-world-vocab
TXT PATH`` the real RWKV "world" one from rwkv_vocab_v20230424.txt, in PyPI's ``rwkv`` package.)
"""

from __future__ import annotations

import ctypes
import json
import random
import sys
from pathlib import Path

import llama_cpp

N_STRINGS = 200
N_ID_SEQUENCES = 60
SEED = 1234

WORDS = ["Hello", "world", "the", "The", "tokenizer", "llama", "I'm", "you're", "don't", "it's", "WE'LL", "they'VE",
         "naïve", "café", "Äpfel", "straße", "ﬁ", "x", "a", "isn't", "O'Neil", "e.g.", "U.S.A."]
SCRIPTS = [
    "中文字符测试分词器", "日本語のテキストとカタカナ", "한국어 텍스트", "Привет мир", "مرحبا بالعالم", "नमस्ते दुनिया",
    "สวัสดีชาวโลก", "Γειά σου Κόσμε", "שלום עולם", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ℌ𝔢𝔩𝔩𝔬", "ǅungla", "İstanbul",
]
EMOJI = ["🦙", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "✅", "🤖", "🔥🔥🔥", "1️⃣"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u2009", "\u3000", "\u2028", "\x0b",
          "\x0c", "\u200b", "\u0085", " " * 9, "\t\t", "\n\n\n"]
CODE = ["def f(x):\n    return x**2\n", "if (a && b) { c++; }", "<div class=\"x\">&amp;</div>", "x = [1, 2, 3]",
        "SELECT * FROM t WHERE id=42;", "#include <stdio.h>", "λx.x", "a+=b<<2", "`code`", "fn main() -> i32 {}",
        "$HOME/.config", "C:\\path\\file.txt", "https://example.com/a?b=c&d=e", "... !!! ??? ,,,", "'''", "\"\"\""]
NUMBERS = ["0", "7", "42", "123", "1234", "12345", "1234567", "3.14159", "1,000,000", "٣٤٥", "१२३", "½", "Ⅻ",
           "²³", "0x1F", "1e-5"]
ODD = ["\u0301", "e\u0301", "\ufffd", "\ufeff", "\u200d", "\ue000", "\U000f0000", "\u0378", "\U0001fbf9", "\x00",
       "\x01", "\x7f", "\u00ad", "\u2060", "\U0010fffd", "'s", "'S", "'ll", "'Re", "'"]


def random_codepoint(rng: random.Random) -> str:
    while True:
        cpt = rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0x80, 0x800), rng.randrange(0x800, 0x10000),
                          rng.randrange(0x10000, 0x110000)])
        if not 0xD800 <= cpt <= 0xDFFF:
            return chr(cpt)


def random_string(rng: random.Random, specials: list[str]) -> str:
    kinds = [WORDS, SCRIPTS, EMOJI, SPACES, CODE, NUMBERS, ODD]
    parts = []
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.08 and specials:
            parts.append(rng.choice(specials))
        elif roll < 0.16:
            parts.append("".join(random_codepoint(rng) for _ in range(rng.randint(1, 4))))
        else:
            parts.append(rng.choice(rng.choice(kinds)))
        if rng.random() < 0.5:
            parts.append(rng.choice([" ", "", "\n", "  "]))
    return "".join(parts)


class Oracle:
    def __init__(self, path: str) -> None:
        self.llama = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self.n_tokens = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)

    def detokenize(self, ids: list[int], remove_special: bool, unparse_special: bool) -> bytes:
        array = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        buf = ctypes.create_string_buffer(1 << 20)
        n = llama_cpp.llama_detokenize(self.vocab, array, len(ids), buf, len(buf), remove_special, unparse_special)
        return buf.raw[:n]

    def piece(self, token_id: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(1 << 12)
        n = llama_cpp.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, special)
        return buf.raw[:n]

    def special_texts(self) -> list[str]:
        ids = [i for i in range(self.n_tokens)
               if llama_cpp.llama_vocab_get_attr(self.vocab, i) & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
                                                                    | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED)]
        return [llama_cpp.llama_vocab_get_text(self.vocab, i).decode("utf-8", "replace") for i in ids]

    def facts(self) -> dict:
        def tid(value: int) -> int | None:
            return None if value < 0 else value

        v = self.vocab
        return {
            "n_vocab": self.n_tokens,
            "bos_id": tid(llama_cpp.llama_vocab_bos(v)),
            "eos_id": tid(llama_cpp.llama_vocab_eos(v)),
            "eot_id": tid(llama_cpp.llama_vocab_eot(v)),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(v)),
            "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(v)),
            "eog_ids": [i for i in range(self.n_tokens) if llama_cpp.llama_vocab_is_eog(v, i)],
        }


def make(path: str, out_dir: Path) -> None:
    oracle = Oracle(path)
    rng = random.Random(f"{SEED}:{Path(path).name}")
    specials = oracle.special_texts()
    special_sample = rng.sample(specials, min(len(specials), 40))
    cases = []
    for _ in range(N_STRINGS):
        text = random_string(rng, special_sample)
        ids = oracle.tokenize(text, False, False)
        ids_special = oracle.tokenize(text, True, True)
        cases.append({
            "text": text,
            "ids": ids,
            "ids_special": ids_special,
            "detok": oracle.detokenize(ids, False, False).hex(),
            "detok_special": oracle.detokenize(ids_special, True, True).hex(),
        })
    sequences = []
    special_ids = [i for i in range(oracle.n_tokens) if llama_cpp.llama_vocab_get_attr(oracle.vocab, i)
                   & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
                      | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN | llama_cpp.LLAMA_TOKEN_ATTR_BYTE)]
    for _ in range(N_ID_SEQUENCES):
        ids = [rng.choice(special_ids) if special_ids and rng.random() < 0.25 else rng.randrange(oracle.n_tokens)
               for _ in range(rng.randint(1, 8))]
        sequences.append({
            "ids": ids,
            "pieces": [oracle.piece(i, True).hex() for i in ids],
            "pieces_plain": [oracle.piece(i, False).hex() for i in ids],
            "detok": oracle.detokenize(ids, False, False).hex(),
            "detok_special": oracle.detokenize(ids, False, True).hex(),
            "detok_removed": oracle.detokenize(ids, True, False).hex(),
        })
    golden = {"vocab": Path(path).name, "seed": SEED, "facts": oracle.facts(), "cases": cases,
              "id_sequences": sequences}
    name = Path(path).name.removesuffix(".gguf")
    (out_dir / f"{name}.json").write_text(json.dumps(golden, ensure_ascii=False, indent=None))
    print(f"{name}: {len(cases)} strings, {len(sequences)} id sequences")


def write_rwkv_vocab(path: str) -> None:
    """A small RWKV "world" vocabulary (llama.cpp ships no RWKV vocab file): every byte plus a few words."""
    import gguf

    tokens = ["<s>"] + [f"\\x{b:02x}" if b < 32 or b > 126 or b == 92 else chr(b) for b in range(256)]
    tokens += ["he", "hel", "hello", " w", " wor", "ld", "\\n\\n", "caf\\xc3\\xa9", "日本", " the", "th", "\\t"]
    _write_rwkv_vocab(path, tokens, [gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (len(tokens) - 1))


def _write_rwkv_vocab(path: str, tokens: list[str], types: list[int], add_more=None) -> None:
    """A vocabulary-only rwkv6 GGUF of ``tokens``; ``add_more(writer)`` adds further keys."""
    import gguf

    writer = gguf.GGUFWriter(path, "rwkv6")
    writer.add_tokenizer_model("rwkv")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if add_more is not None:
        add_more(writer)
    for key, value in (("context_length", 4096), ("embedding_length", 64), ("block_count", 1)):
        writer.add_uint32(f"rwkv6.{key}", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_rwkv_world_vocab(vocab_txt: str, path: str) -> None:
    """The RWKV "world" vocabulary (rwkv_vocab_v20230424.txt, as PyPI's ``rwkv`` package ships it)
    written as convert_hf_to_gguf.py's _set_vocab_rwkv_world does: each token's bytes as Python
    escapes after a control ``<s>``, padded to 65536 with unused tokens, "\\n\\n" (261) as the end of
    turn, bos and eos 0."""
    import ast

    import gguf

    tokens, types = ["<s>"], [gguf.TokenType.CONTROL]
    for line in Path(vocab_txt).read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        token = ast.literal_eval(" ".join(parts[1:-1]))
        token = token.encode("utf-8") if isinstance(token, str) else token
        assert len(token) == int(parts[-1])
        tokens.append(repr(token)[2:-1])
        types.append(gguf.TokenType.NORMAL)
    tokens += [f"[PAD{i}]" for i in range(len(tokens), 65536)]
    types += [gguf.TokenType.UNUSED] * (65536 - len(types))
    # convert's template: the llama.cpp tree's own file (this gguf package's tree), else the name
    template = Path(gguf.__file__).parents[2] / "models" / "templates" / "llama-cpp-rwkv-world.jinja"

    def specials(writer: gguf.GGUFWriter) -> None:
        writer.add_eot_token_id(261)
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_chat_template(template.read_text(encoding="utf-8") if template.is_file() else "rwkv-world")

    _write_rwkv_vocab(path, tokens, types, specials)


def main(argv: list[str]) -> None:
    if argv[0] == "--write-rwkv-vocab":
        write_rwkv_vocab(argv[1])
        return
    if argv[0] == "--write-rwkv-world-vocab":
        write_rwkv_world_vocab(argv[1], argv[2])
        return
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in argv[1:]:
        make(path, out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
