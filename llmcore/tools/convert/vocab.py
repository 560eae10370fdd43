"""A Hugging Face BPE tokenizer (tokenizer.json) as convert_hf_to_gguf.py writes it: the token
list with llama.cpp's token types, the pre-tokenizer named by the digest of a check text's ids,
then gguf-py's ``SpecialVocab`` (merges, special token ids, add_bos/add_eos, chat template)."""

from __future__ import annotations

import hashlib
import json
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
    """Tokens, token types and pre-tokenizer name of the BPE tokenizer in ``directory``
    (get_vocab_base): ids the vocabulary lacks below ``vocab_size`` become ``[PAD<id>]``."""
    from tokenizers import Tokenizer

    path = directory / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # the tokenizers package raises its own exception types
        raise LLMCoreError(f"{path}: cannot load the tokenizer: {error}") from None
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


def add_gpt2_vocab(kv: gguf.GGUFWriter, directory: Path, vocab_size: int | None) -> None:
    """_set_vocab_gpt2: the BPE vocabulary's keys, added to the key-value collector ``kv``."""
    tokens, types, pre = bpe_vocab(directory, vocab_size)
    kv.add_tokenizer_model("gpt2")
    kv.add_tokenizer_pre(pre)
    kv.add_token_list(tokens)
    kv.add_token_types(types)
    special = gguf.SpecialVocab(directory, load_merges=True)
    _byte_level_adds_nothing(directory, special)
    special.add_to_gguf(kv, quiet=True)


def _byte_level_adds_nothing(directory: Path, special: gguf.SpecialVocab) -> None:
    """llama.cpp 0.3.36's gguf-py (newer than the gguf release llmcore installs): a ByteLevel post
    processor in tokenizer.json adds neither BOS nor EOS, whatever tokenizer_config.json says."""
    try:
        processor = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8")).get("post_processor") or {}
    except ValueError:
        return
    if any(p.get("type") == "ByteLevel" for p in processor.get("processors", [processor])):
        special.add_special_token = {"bos": False, "eos": False, **{
            typ: add for typ, add in special.add_special_token.items() if typ not in ("bos", "eos")}}
