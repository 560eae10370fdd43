"""Hugging Face tokenizers as convert_hf_to_gguf.py writes them: a BPE tokenizer.json (the token
list with llama.cpp's token types, the pre-tokenizer named by the digest of a check text's ids) or
a SentencePiece tokenizer.model (pieces, scores and types, with the added tokens of
added_tokens.json and tokenizer_config.json), then gguf-py's ``SpecialVocab`` (merges, special
token ids, add_bos/add_eos, chat template)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf

from llmcore.errors import LLMCoreError
from llmcore.tools.convert.pre_tokenizers import CHECK_TEXT, PRE_TOKENIZERS


def _looks_special(token: str) -> bool:
    """convert_hf_to_gguf.py's does_token_look_special: added tokens some models forget to mark."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<｜") and token.endswith("｜>")) or (token.startswith("<unused") and token.endswith(">")))


def bpe_vocab(directory: Path, vocab_size: int | None) -> tuple[list[str], list[int], str]:
    """Tokens, token types and pre-tokenizer name of the BPE (or WordPiece) tokenizer.json in
    ``directory`` (get_vocab_base): ids the vocabulary lacks below ``vocab_size`` become ``[PAD<id>]``."""
    from tokenizers import Tokenizer

    path = directory / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # the tokenizers package raises its own exception types
        raise LLMCoreError(f"{path}: cannot load the tokenizer: {error}") from None
    tokenizer.no_truncation()  # as transformers encodes: tokenizer.json's truncation and padding left out
    tokenizer.no_padding()
    ids = tokenizer.encode(CHECK_TEXT, add_special_tokens=True).ids
    digest = hashlib.sha256(str(ids).encode()).hexdigest()
    if digest not in PRE_TOKENIZERS:
        raise LLMCoreError(f"{path}: unknown BPE pre-tokenizer (check digest {digest}); llama.cpp 0.3.36 does not know it")
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    added = tokenizer.get_added_tokens_decoder()
    size = vocab_size if vocab_size is not None else len(vocab)
    if max(vocab.values()) >= size:
        raise LLMCoreError(f"{path}: token id {max(vocab.values())} is outside config.json's vocab_size {size}")
    by_id = {i: token for token, i in vocab.items()}
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = by_id[i]
        if i in added:
            if not added[i].normalized:  # llama.cpp expects added tokens pre-normalized
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False).ids, skip_special_tokens=False)
            if added[i].special or _looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, [int(t) for t in types], PRE_TOKENIZERS[digest]


def tokenizer_config(directory: Path) -> dict[str, Any]:
    path = directory / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise LLMCoreError(f"{path}: not JSON ({error})") from None


def add_gpt2_vocab(kv: gguf.GGUFWriter, directory: Path, vocab_size: int | None,
                   special_ids: dict[str, int] | None = None) -> None:
    """_set_vocab_gpt2: the BPE vocabulary's keys, added to the key-value collector ``kv``;
    ``special_ids`` are special tokens the model class sets where the tokenizer files set none."""
    tokens, types, pre = bpe_vocab(directory, vocab_size)
    kv.add_tokenizer_model("gpt2")
    kv.add_tokenizer_pre(pre)
    kv.add_token_list(tokens)
    kv.add_token_types(types)
    special = SpecialVocab(directory, load_merges=True)
    for typ, token_id in (special_ids or {}).items():
        special._set_special_token(typ, token_id)
    special.add_to_gguf(kv, quiet=True)


def add_wordpiece_vocab(kv: gguf.GGUFWriter, directory: Path, vocab_size: int | None, type_vocab_size: int) -> None:
    """BertModel.set_vocab: the WordPiece vocabulary in llama.cpp's phantom-space form (a word's
    first piece gets a leading \u2581, a continuation piece loses its ``##``), added to ``kv``."""
    tokens, types, pre = bpe_vocab(directory, vocab_size)
    kv.add_token_type_count(type_vocab_size)
    tokens = [token if kind == gguf.TokenType.CONTROL else token[2:] if token.startswith("##") else "\u2581" + token
              for token, kind in zip(tokens, types)]
    kv.add_tokenizer_model("bert")
    kv.add_tokenizer_pre(pre)
    kv.add_token_list(tokens)
    kv.add_token_types(types)
    SpecialVocab(directory, n_vocab=len(tokens)).add_to_gguf(kv, quiet=True)


class SpecialVocab(gguf.SpecialVocab):
    """gguf-py's SpecialVocab as llama.cpp 0.3.36's gguf-py (newer than the gguf release llmcore
    installs) reads a checkpoint: a ByteLevel post processor in tokenizer.json adds neither BOS nor
    EOS, whatever tokenizer_config.json says, and tokenizer.json's normalizer flags (lowercase,
    strip accents) become keys after the chat template."""

    def _load(self, path: Path) -> None:
        self.normalizer_flags: dict[str, bool] = {}
        super()._load(path)
        try:
            tokenizer = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        processor = tokenizer.get("post_processor") or {}
        if any(p.get("type") == "ByteLevel" for p in processor.get("processors", [processor])):
            self.add_special_token = {"bos": False, "eos": False, **{
                typ: add for typ, add in self.add_special_token.items() if typ not in ("bos", "eos")}}
        if normalizer := tokenizer.get("normalizer"):
            self._read_normalizer(normalizer)

    def _read_normalizer(self, normalizer: dict[str, Any]) -> None:
        kind = normalizer.get("type")
        if kind == "Lowercase":
            self.normalizer_flags["lowercase"] = True
        elif kind == "StripAccents":
            self.normalizer_flags["strip_accents"] = True
        elif kind == "BertNormalizer":
            for flag in ("lowercase", "strip_accents"):
                if flag in normalizer:
                    self.normalizer_flags[flag] = normalizer[flag]
        elif kind == "Sequence":
            for part in normalizer.get("normalizers", []):
                self._read_normalizer(part)

    def add_to_gguf(self, gw: gguf.GGUFWriter, quiet: bool = False) -> None:
        super().add_to_gguf(gw, quiet)
        for flag in ("lowercase", "strip_accents"):
            if (value := self.normalizer_flags.get(flag)) is not None:
                gw.add_bool(f"tokenizer.ggml.normalizer.{flag}", value)


# SentencePiece's piece types (sentencepiece_model.proto), which are also llama.cpp's token types
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


def _varint(data: bytes, at: int, path: Path) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise LLMCoreError(f"{path}: offset {at}: the protobuf ends inside a number")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes, path: Path, base: int = 0):
    """The (field number, wire type, value, offset) of one protobuf message; length-delimited values
    as bytes, fixed32 ones as their 4 bytes."""
    at = 0
    while at < len(data):
        start = at
        key, at = _varint(data, at, path)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at, path)
        elif wire == 1:
            value, at = data[at:at + 8], at + 8
        elif wire == 2:
            size, at = _varint(data, at, path)
            value, at = data[at:at + size], at + size
        elif wire == 5:
            value, at = data[at:at + 4], at + 4
        else:
            raise LLMCoreError(f"{path}: offset {base + start}: protobuf wire type {wire} is not SentencePiece's")
        if at > len(data):
            raise LLMCoreError(f"{path}: offset {base + start}: field {number} runs past the end of the file")
        yield number, wire, value, base + start


def sentencepiece_pieces(path: Path) -> list[tuple[str, float, int]]:
    """Each piece of a SentencePiece model file (ModelProto's field 1) as (text, score, type): what
    SentencePieceProcessor's IdToPiece, GetScore and Is* tell convert_hf_to_gguf.py."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LLMCoreError(f"{path}: {error.strerror}") from None
    pieces = []
    for number, wire, message, offset in _fields(data, path):
        if number != 1 or wire != 2:
            continue
        text, score, kind = "", 0.0, _NORMAL
        for field, field_wire, value, _ in _fields(message, path, offset):
            if field == 1 and field_wire == 2:
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise LLMCoreError(f"{path}: offset {offset}: piece {len(pieces)} is not UTF-8") from None
            elif field == 2 and field_wire == 5:
                (score,) = struct.unpack("<f", value)
            elif field == 3 and field_wire == 0:
                kind = value
        pieces.append((text, score, kind))
    if not pieces:
        raise LLMCoreError(f"{path}: no SentencePiece pieces (not a tokenizer.model?)")
    return pieces


def _sentencepiece_and_added_tokens(directory: Path, vocab_size: int | None) -> tuple[list[str], list[float], list[int]]:
    """tokenizer.model's tokens, scores and token types, padded to ``vocab_size`` with ``[PAD<id>]``,
    then added_tokens.json's tokens (user-defined, score -1000)."""
    pieces = sentencepiece_pieces(directory / "tokenizer.model")
    size = vocab_size or len(pieces)
    tokens, scores, types = [f"[PAD{i}]" for i in range(size)], [-10000.0] * size, [_UNUSED] * size
    for i, (text, score, kind) in enumerate(pieces[:size]):
        tokens[i], scores[i] = text, score
        types[i] = kind if kind in (_UNKNOWN, _CONTROL, _UNUSED, _BYTE) else _NORMAL
    added_path = directory / "added_tokens.json"
    if added_path.is_file():
        try:
            added = json.loads(added_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise LLMCoreError(f"{added_path}: not JSON ({error})") from None
        for text, i in added.items():
            if i < size:
                tokens[i], scores[i], types[i] = text, -1000.0, _USER_DEFINED
    return tokens, scores, types


def sentencepiece_vocab(directory: Path, vocab_size: int | None) -> tuple[list[str], list[float], list[int]]:
    """_create_vocab_sentencepiece: tokens, scores and token types of tokenizer.model and
    added_tokens.json, overridden by tokenizer_config.json's added_tokens_decoder."""
    tokens, scores, types = _sentencepiece_and_added_tokens(directory, vocab_size)
    size = len(tokens)
    for key, entry in tokenizer_config(directory).get("added_tokens_decoder", {}).items():
        i, text = int(key), entry["content"]
        if i >= size:
            continue
        if entry.get("special") or _looks_special(text):
            types[i] = _CONTROL
        else:
            text = text.replace("\u2581", " ")  # user-defined spaces pre-normalized
            types[i] = _USER_DEFINED
        tokens[i], scores[i] = text, -1000.0
    return tokens, scores, types


def phi3_sentencepiece_vocab(directory: Path, vocab_size: int | None) -> tuple[list[str], list[float], list[int]]:
    """Phi3MiniModel.set_vocab's own reading: tokenizer.model and added_tokens.json, then the added
    tokens of tokenizer_config.json and of tokenizer.json as they are (control where special, else
    user-defined)."""
    tokens, scores, types = _sentencepiece_and_added_tokens(directory, vocab_size)
    added = [(int(key), entry) for key, entry in tokenizer_config(directory).get("added_tokens_decoder", {}).items()]
    if (directory / "tokenizer.json").is_file():
        try:
            tokenizer = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
        except ValueError as error:
            raise LLMCoreError(f"{directory / 'tokenizer.json'}: not JSON ({error})") from None
        added += [(int(entry["id"]), entry) for entry in tokenizer.get("added_tokens", [])]
    for i, entry in added:
        if i >= len(tokens):
            raise LLMCoreError(f"{directory}: added token {entry['content']!r} has id {i}, outside the "
                               f"{len(tokens)}-token vocabulary")
        tokens[i], scores[i] = entry["content"], -1000.0
        types[i] = _CONTROL if entry.get("special") else _USER_DEFINED
    return tokens, scores, types


def _add_sentencepiece_tokens(kv: gguf.GGUFWriter, tokens: list[str], scores: list[float], types: list[int]) -> None:
    kv.add_tokenizer_model("llama")
    kv.add_tokenizer_pre("default")
    kv.add_token_list(tokens)
    kv.add_token_scores(scores)
    kv.add_token_types(types)


def add_sentencepiece_vocab(kv: gguf.GGUFWriter, directory: Path, vocab_size: int | None,
                            read: Callable[[Path, int | None], tuple[list[str], list[float], list[int]]]
                            = sentencepiece_vocab) -> None:
    """_set_vocab_sentencepiece: the SentencePiece vocabulary's keys (as ``read`` reads it), added to ``kv``."""
    tokens, scores, types = read(directory, vocab_size)
    _add_sentencepiece_tokens(kv, tokens, scores, types)
    SpecialVocab(directory, n_vocab=len(tokens)).add_to_gguf(kv, quiet=True)


def _adds_dummy_prefix(path: Path) -> bool:
    """The SentencePiece model's normalizer_spec.add_dummy_prefix (ModelProto field 3, its field 3)."""
    data = path.read_bytes()
    for number, wire, message, offset in _fields(data, path):
        if number == 3 and wire == 2:
            for field, field_wire, value, _ in _fields(message, path, offset):
                if field == 3 and field_wire == 0:
                    return bool(value)
    return True


def add_internlm2_vocab(kv: gguf.GGUFWriter, directory: Path, vocab_size: int | None) -> None:
    """InternLM2Model.set_vocab: tokenizer.model's pieces (\\x00 as a dragon emoji, [UNUSED...] pieces
    unused), added_tokens.json's tokens appended, tokenizer_config.json's and tokenizer.json's added
    tokens in place, the model's own space prefix, and <|im_end|> as EOS where it is an added token."""
    pieces = sentencepiece_pieces(directory / "tokenizer.model")
    size = len(pieces) if vocab_size is None else vocab_size
    if size > len(pieces):
        raise LLMCoreError(f"{directory / 'tokenizer.model'}: {len(pieces)} pieces, fewer than config.json's "
                           f"vocab_size {size}")
    tokens, scores, types = [], [], []
    for text, score, kind in pieces[:size]:
        tokens.append("\U0001f409" if text == "\x00" else text)
        scores.append(score)
        types.append(_UNUSED if text.startswith("[UNUSED") else
                     kind if kind in (_UNKNOWN, _CONTROL, _UNUSED, _BYTE) else _NORMAL)
    added_path = directory / "added_tokens.json"
    if added_path.is_file():
        for text in read_json(added_path):
            tokens.append(text)
            scores.append(-1000.0)
            types.append(_USER_DEFINED)
    added = list(tokenizer_config(directory).get("added_tokens_decoder", {}).items())
    if (directory / "tokenizer.json").is_file():
        added += [(entry["id"], entry) for entry in read_json(directory / "tokenizer.json").get("added_tokens", [])]
    chat_eos = None
    for key, entry in added:
        i = int(key)
        if i >= len(tokens):
            raise LLMCoreError(f"{directory}: added token {entry['content']!r} has id {i}, outside the "
                               f"{len(tokens)}-token vocabulary")
        if entry["content"] == "<|im_end|>":
            chat_eos = i
        tokens[i], scores[i] = entry["content"], -1000.0
        types[i] = _CONTROL if entry.get("special") else _USER_DEFINED
    _add_sentencepiece_tokens(kv, tokens, scores, types)
    kv.add_add_space_prefix(_adds_dummy_prefix(directory / "tokenizer.model"))
    special = SpecialVocab(directory, n_vocab=len(tokens))
    if chat_eos is not None:
        special.special_token_ids["eos"] = chat_eos
    special.add_to_gguf(kv, quiet=True)


def read_json(path: Path) -> Any:
    """A JSON file of the checkpoint; a one-line error where it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise LLMCoreError(f"{path}: {error.strerror}") from None
    except ValueError as error:
        raise LLMCoreError(f"{path}: not JSON ({error})") from None
