"""Tokenizer API on the default model: llama.cpp goldens, streaming, errors, speed and the CLI."""

from __future__ import annotations

import json
import time

import pytest
from conftest import GOLDEN_DIR, golden_names

from llmcore.cli import main as cli_main
from llmcore.errors import TokenizerError
from llmcore.tokenizer import Tokenizer, TokenType


@pytest.fixture(scope="module")
def smollm(default_model_path) -> Tokenizer:
    return Tokenizer.from_gguf(default_model_path)


@pytest.mark.parametrize("name", golden_names())
def test_prompt_tokens_match_llama_cpp(name: str, smollm: Tokenizer):
    record = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
    assert smollm.tokenize(record["prompt"], add_special=True, parse_special=True) == record["prompt_tokens"]
    assert smollm.detokenize(record["greedy_tokens"]) == record["greedy_text"]


def test_special_tokens_of_the_default_model(smollm: Tokenizer):
    assert smollm.n_vocab == 49152
    assert (smollm.bos_id, smollm.eos_id, smollm.add_bos, smollm.add_eos) == (1, 2, False, False)
    assert smollm.token_text(2) == "<|im_end|>" and smollm.is_eog(2) and smollm.is_eog(0)
    assert not smollm.is_eog(1)
    assert smollm.token_type(1) is TokenType.CONTROL and smollm.token_type(9690) is TokenType.NORMAL
    # control tokens render only with special=True; parse_special decides whether their text is parsed
    assert smollm.token_to_piece(2, special=True) == b"<|im_end|>" and smollm.token_to_piece(2, special=False) == b""
    assert smollm.tokenize("<|im_end|>", add_special=False, parse_special=True) == [2]
    assert len(smollm.tokenize("<|im_end|>", add_special=False, parse_special=False)) > 1


def test_stream_decoder_never_emits_half_a_character(smollm: Tokenizer):
    text = "naïve 日本語 🦙🦙 👨‍👩‍👧 done"
    ids = smollm.tokenize(text, add_special=False)
    decoder = smollm.stream_decoder()
    chunks = [decoder.feed(i) for i in ids]
    assert "".join(chunks) == text == smollm.detokenize(ids)
    assert "" in chunks  # some tokens end inside a multi-byte character and are held back
    assert all("\ufffd" not in chunk for chunk in chunks)
    llama = smollm.tokenize("🦙", add_special=False)
    assert len(llama) > 1  # byte-level pieces of one character
    cut = smollm.stream_decoder()
    assert cut.feed(llama[0]) == ""
    cut.reset()  # the stream ends inside the character: it is dropped, not shown as U+FFFD
    assert "".join(cut.feed(i) for i in llama) == "🦙"  # nothing of the dropped bytes comes back


def test_unknown_pre_tokenizer_is_an_error():
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "no-such-pre",
                "tokenizer.ggml.tokens": ["a", "b", "ab"], "tokenizer.ggml.merges": ["a b"]}
    with pytest.raises(TokenizerError, match="no-such-pre"):
        Tokenizer.from_metadata(metadata)


def test_missing_or_unknown_model_is_an_error():
    with pytest.raises(TokenizerError, match="tokenizer.ggml.model"):
        Tokenizer.from_metadata({"tokenizer.ggml.tokens": ["a"]})
    with pytest.raises(TokenizerError, match="plamo9"):
        Tokenizer.from_metadata({"tokenizer.ggml.model": "plamo9", "tokenizer.ggml.tokens": ["a"]})


def test_token_ids_outside_the_vocabulary_are_an_error(smollm: Tokenizer):
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        smollm.detokenize([smollm.n_vocab])
    with pytest.raises(TokenizerError):
        smollm.token_to_piece(-1)


MIXED_TEXT = ("The quick brown fox, naïve café 日本語 🦙 1234567 def f(x):\n    return x\n" * 200)[:10_000]


def test_a_long_mixed_text_round_trips(smollm: Tokenizer):
    assert smollm.detokenize(smollm.tokenize(MIXED_TEXT)) == MIXED_TEXT


@pytest.mark.slow  # a timing: a loaded machine misses it
def test_opening_the_model_and_tokenizing_is_fast(default_model_path):
    from llmcore.gguf import GGUFReader

    start = time.perf_counter()
    tokenizer = Tokenizer.from_metadata(GGUFReader(default_model_path).metadata)
    tokenizer.tokenize("warm up")  # the BPE merge table is built on first use
    opened = time.perf_counter() - start
    start = time.perf_counter()
    ids = tokenizer.tokenize(MIXED_TEXT)
    tokenized = time.perf_counter() - start
    assert tokenizer.detokenize(ids) == MIXED_TEXT
    assert opened < 1.0, f"opening took {opened:.3f}s (target well under 0.3s on an idle machine)"
    assert tokenized < 0.5, f"tokenizing 10k characters took {tokenized:.3f}s"


def test_cli_prints_ids_and_pieces(default_model_path, smollm: Tokenizer, capsysbinary):
    expected = smollm.tokenize("Hello <|im_end|>\n", add_special=False, parse_special=True)
    assert cli_main(["tokenize", "-m", str(default_model_path), "-p", "Hello <|im_end|>\\n", "--ids",
                     "--parse-special"]) == 0
    assert capsysbinary.readouterr().out.decode() == f"{expected}\n"
    assert cli_main(["tokenize", "-m", str(default_model_path), "-p", "Hello world", "--show-count"]) == 0
    lines = [f"{i:6d} -> '{smollm.token_to_piece(i).decode()}'" for i in smollm.tokenize("Hello world")]
    assert lines[1].endswith(" -> ' world'")  # llama-tokenize's layout: right-aligned id, quoted piece
    assert capsysbinary.readouterr().out.decode() == "\n".join(lines) + "\nTotal number of tokens: 2\n"


def test_cli_reports_a_missing_file(tmp_path, capsys):
    assert cli_main(["tokenize", "-m", str(tmp_path / "missing.gguf"), "-p", "x"]) == 2
    assert "missing.gguf" in capsys.readouterr().err
