"""The vocabulary as llama.cpp loads it from GGUF metadata (llama_vocab::impl::load).

Holds the token texts, scores and attributes, the special token ids and flags (add_bos, ...), the
end-of-generation set, and turns a token into its piece (llama_token_to_piece).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from llmcore.errors import TokenizerError
from llmcore.tokenizer import unicode as uc
from llmcore.tokenizer.pretokenizers import PreTokenizerConfig, pre_tokenizer_config

log = logging.getLogger(__name__)


class VocabType(enum.Enum):
    SPM = "SPM"  # SentencePiece BPE with scores (llama)
    BPE = "BPE"  # byte-level BPE with merges (gpt2)
    WPM = "WPM"  # WordPiece (bert)
    UGM = "UGM"  # unigram (t5)
    RWKV = "RWKV"  # greedy trie over escaped byte strings


class TokenType(enum.IntEnum):
    """``tokenizer.ggml.token_type`` values (llama_token_type)."""

    UNDEFINED = 0
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


class Attr(enum.IntFlag):
    """llama_token_attr bits."""

    UNDEFINED = 0
    UNKNOWN = 1 << 0
    UNUSED = 1 << 1
    NORMAL = 1 << 2
    CONTROL = 1 << 3
    USER_DEFINED = 1 << 4
    BYTE = 1 << 5
    NORMALIZED = 1 << 6
    LSTRIP = 1 << 7
    RSTRIP = 1 << 8
    SINGLE_WORD = 1 << 9


_TYPE_TO_ATTR = np.array([Attr.UNDEFINED, Attr.NORMAL, Attr.UNKNOWN, Attr.CONTROL, Attr.USER_DEFINED,
                          Attr.UNUSED, Attr.BYTE], dtype=np.int32)
SPECIAL_ATTRS = int(Attr.CONTROL | Attr.UNKNOWN)
ESCAPED_SPACE = "\u2581"
KEY = "tokenizer.ggml."

# tokenizer.ggml.model -> (vocab type, default special ids: bos, eos, unk, sep, pad, mask)
_MODELS: dict[str, tuple[VocabType, tuple[int | None, ...]]] = {
    "llama": (VocabType.SPM, (1, 2, 0, None, None, None)),
    "bert": (VocabType.WPM, (101, None, 100, 102, 0, 103)),
    "gpt2": (VocabType.BPE, (11, 11, None, None, None, None)),
    "gemma4": (VocabType.BPE, (None,) * 6),
    "t5": (VocabType.UGM, (None, 1, 2, None, 0, None)),
    "rwkv": (VocabType.RWKV, (None,) * 6),
}

_EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
              "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
_EOM_TEXTS = ("<|eom_id|>",)
_FIM_TEXTS = {
    "fim_pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                "<|code_prefix|>", "<|prefix|>"),
    "fim_suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                "<|code_suffix|>", "<|suffix|>"),
    "fim_mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                "<|code_middle|>", "<|middle|>"),
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
_EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
              "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
              "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
              "<｜end▁of▁sentence｜>", "[e~[")
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss


class Vocab:
    """Token table, special tokens and flags of one GGUF vocabulary, as llama.cpp derives them."""

    def __init__(self, metadata: Mapping[str, Any], source: str = "<metadata>") -> None:
        self.source = source
        model = metadata.get(KEY + "model")
        if model is None:
            raise TokenizerError(f"{source}: {KEY}model: missing (no tokenizer in this file)")
        if model == "whitespace":
            model_kind = _MODELS["gpt2"]
        elif model in _MODELS:
            model_kind = _MODELS[model]
        elif model in ("hybriddna", "plamo2", "no_vocab", "none", "test"):
            raise TokenizerError(f"{source}: {KEY}model: tokenizer model {model!r} is not supported by llmcore")
        else:
            raise TokenizerError(f"{source}: {KEY}model: unknown tokenizer model {model!r}")
        self.model: str = model
        self.type, defaults = model_kind
        bos, eos, unk, sep, pad, mask = defaults

        tokens = metadata.get(KEY + "tokens")
        if not isinstance(tokens, list) or not tokens:
            raise TokenizerError(f"{source}: {KEY}tokens: missing or empty")
        self.texts: list[str] = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        n = len(self.texts)
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(self.texts)}

        self.scores = self._array(metadata, "scores", n, np.float32)
        types = self._array(metadata, "token_type", n, np.int32)
        self.token_types = types if types is not None else np.full(n, TokenType.NORMAL, dtype=np.int32)
        attrs = np.full(n, Attr.NORMAL, dtype=np.int32)
        if types is not None:
            attrs = np.where((types >= 0) & (types < len(_TYPE_TO_ATTR)), _TYPE_TO_ATTR[np.clip(types, 0, 6)],
                             Attr.UNDEFINED).astype(np.int32)
        self.attrs = attrs

        self.merges: list[str] | None = None
        self.pre: PreTokenizerConfig | None = None
        self.add_space_prefix = False
        self.add_bos = self.add_eos = self.add_sep = False
        self.clean_spaces = False
        self.ignore_merges = False
        self.escape_whitespaces = True
        self.remove_extra_whitespaces = False
        self.treat_whitespace_as_suffix = False
        if self.type is VocabType.BPE:
            pre_name = "gemma4" if model == "gemma4" else metadata.get(KEY + "pre")
            merges = metadata.get(KEY + "merges")
            if merges is None and pre_name != "kimi-k2":
                raise TokenizerError(f"{source}: {KEY}merges: missing for a BPE vocabulary")
            self.merges = list(merges or [])
            if not pre_name:
                log.warning("%s: missing pre-tokenizer type (%spre), using 'default'; "
                            "generation quality will be degraded, consider regenerating the model", source, KEY)
                pre_name = "default"
            self.pre = pre_tokenizer_config(pre_name, source)
            self.clean_spaces = self.pre.clean_spaces
            self.ignore_merges = self.pre.ignore_merges
            self.escape_whitespaces = self.pre.escape_whitespaces
            self.add_bos = self.pre.add_bos
            self.add_sep = self.pre.add_sep
            if self.pre.no_bos:
                bos = None
        elif self.type is VocabType.SPM:
            self.add_space_prefix = self.add_bos = True
        elif self.type is VocabType.WPM:
            self.clean_spaces = self.add_bos = self.add_sep = True
        elif self.type is VocabType.UGM:
            self.add_eos = True
        self.add_space_prefix = bool(metadata.get(KEY + "add_space_prefix", self.add_space_prefix))
        self.remove_extra_whitespaces = bool(metadata.get(KEY + "remove_extra_whitespaces", False))
        charsmap = metadata.get(KEY + "precompiled_charsmap")
        self.precompiled_charsmap = bytes(np.asarray(charsmap, dtype=np.uint8)) if charsmap is not None else b""

        ids = {"bos": bos, "eos": eos, "eot": None, "eom": None, "unk": unk, "sep": sep, "pad": pad, "mask": mask,
               **{name: None for name in _FIM_TEXTS}}
        ids = {name: None if value is not None and value >= n else value for name, value in ids.items()}
        keys = {"bos": "bos_token_id", "eos": "eos_token_id", "eot": "eot_token_id", "eom": "eom_token_id",
                "unk": "unknown_token_id", "sep": "seperator_token_id", "pad": "padding_token_id",
                "mask": "mask_token_id", "fim_pre": "fim_pre_token_id", "fim_suf": "fim_suf_token_id",
                "fim_mid": "fim_mid_token_id", "fim_pad": "fim_pad_token_id", "fim_rep": "fim_rep_token_id",
                "fim_sep": "fim_sep_token_id"}
        deprecated = {"fim_pre": "prefix_token_id", "fim_suf": "suffix_token_id", "fim_mid": "middle_token_id"}
        for name, key in [*keys.items(), *deprecated.items()]:
            value = metadata.get(KEY + key)
            if value is None:
                continue
            if 0 <= int(value) < n:
                ids[name] = int(value)
            else:
                log.warning("%s: bad special token %s%s = %s, using default %s", source, KEY, key, value, ids[name])
        for flag in ("add_bos", "add_eos", "add_sep"):
            value = metadata.get(f"{KEY}{flag}_token")
            if value is not None:
                setattr(self, flag, bool(value))
        if self.pre is not None and self.pre.pre_type == "GEMMA4":
            self.add_bos = True  # llama.cpp forces BOS for Gemma 4
        # BertNormalizer options default to on, except for the "whitespace" pre-tokenizer
        lowercase_default = self.pre is None or self.pre.pre_type != "WHITESPACE"
        self.lowercase = bool(metadata.get(KEY + "normalizer.lowercase", lowercase_default))
        self.strip_accents = bool(metadata.get(KEY + "normalizer.strip_accents", self.lowercase))

        self._detect_special_tokens(ids)
        self.bos_id: int | None = ids["bos"]
        self.eos_id: int | None = ids["eos"]
        self.eot_id: int | None = ids["eot"]
        self.eom_id: int | None = ids["eom"]
        self.unk_id: int | None = ids["unk"]
        self.sep_id: int | None = ids["sep"]
        self.pad_id: int | None = ids["pad"]
        self.mask_id: int | None = ids["mask"]
        self.fim_ids = {name: ids[name] for name in _FIM_TEXTS}

        special = np.flatnonzero(self.attrs & (Attr.CONTROL | Attr.USER_DEFINED | Attr.UNKNOWN))
        lengths = np.array([len(self.texts[i].encode("utf-8", "surrogatepass")) for i in special], dtype=np.int64)
        # longest first, as the partition into special tokens and text tries them
        self.special_tokens: list[int] = special[np.argsort(-lengths, kind="stable")].tolist()
        self._set_model_specific_attrs(str(metadata.get("general.name", "")).lower(),
                                       str(metadata.get(KEY + "pre", "")),
                                       str(metadata.get("general.architecture", "")))
        self.attr_list: list[int] = self.attrs.tolist()  # plain ints for per-token lookups
        self._pieces: dict[int, bytes] = {}

    def _array(self, metadata: Mapping[str, Any], name: str, n: int, dtype: type) -> np.ndarray | None:
        value = metadata.get(KEY + name)
        if value is None:
            return None
        array = np.asarray(value, dtype=dtype)
        if array.ndim != 1 or len(array) < n:
            raise TokenizerError(f"{self.source}: {KEY}{name}: {len(array)} entries for {n} tokens")
        return array

    def _mark_control(self, token_id: int) -> None:
        if not self.attrs[token_id] & Attr.CONTROL:
            log.debug("control-looking token %d %r was not control-type; overriding", token_id, self.texts[token_id])
            self.attrs[token_id] |= Attr.CONTROL

    def _detect_special_tokens(self, ids: dict[str, int | None]) -> None:
        """EOT/EOM/FIM detection by token text, unused-token marking and the end-of-generation set."""
        lookup = self.token_to_id.get
        for name, texts in (("eot", _EOT_TEXTS), ("eom", _EOM_TEXTS), *_FIM_TEXTS.items()):
            if ids[name] is None:
                # llama.cpp takes the first match in its hash map's order; we take the first text listed
                found = next((lookup(t) for t in texts if lookup(t) is not None), None)
                if found is not None:
                    ids[name] = found
                    self._mark_control(found)
        for i in np.flatnonzero(self.attrs & Attr.CONTROL):
            if "unused" in self.texts[i]:
                self.attrs[i] |= Attr.UNUSED
        eog = {ids[name] for name in ("fim_pad", "fim_rep", "fim_sep") if ids[name] is not None}
        for text in _EOG_TEXTS:
            token_id = lookup(text)
            if token_id is not None:
                eog.add(token_id)
                self._mark_control(token_id)
        for text in _ALWAYS_RENDERED:
            if lookup(text) is not None:
                self.attrs[lookup(text)] = Attr.USER_DEFINED
        eog.update(ids[name] for name in ("eos", "eot", "eom") if ids[name] is not None)
        texts = {self.texts[i]: i for i in eog}
        if "<|end|>" in texts and (("<|return|>" in texts and ("<|call|>" in texts or "<|calls|>" in texts))
                                   or (("<|call|>" in texts or "<|calls|>" in texts) and "<|flush|>" in texts)):
            eog.discard(texts["<|end|>"])  # o200k_harmony / solar-open: <|end|> ends a message, not generation
            self.attrs[texts["<|end|>"]] = Attr.USER_DEFINED
        if "</s>" in texts and ("<|tool_response>" in texts or "<|plamo:eos|>" in texts):
            eog.discard(texts["</s>"])  # gemma4 and plamo have a normal </s>
            self.attrs[texts["</s>"]] = Attr.NORMAL
        self.eog_ids = frozenset(eog)

    def _set_model_specific_attrs(self, model_name: str, pre: str, arch: str) -> None:
        """LSTRIP/RSTRIP attributes llama.cpp sets by model name (they are missing from GGUF files)."""
        lookup = self.token_to_id.get
        if any(s in pre for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) or \
                any(s in arch for s in ("nomic-bert-moe", "jina-bert-v3")):
            if lookup("<mask>") is not None:
                self.attrs[lookup("<mask>")] |= Attr.LSTRIP
        elif "phi-3" in model_name or "phi3" in model_name:
            for i in self.special_tokens:
                self.attrs[i] |= Attr.RSTRIP
            for text, on in (("</s>", True), ("<unk>", False), ("<s>", False), ("<|endoftext|>", False)):
                if lookup(text) is not None:
                    self.attrs[lookup(text)] = (self.attrs[lookup(text)] | Attr.RSTRIP) if on else \
                        (self.attrs[lookup(text)] & ~Attr.RSTRIP)
        elif "modern-bert" in model_name and lookup("[MASK]") is not None:
            self.attrs[lookup("[MASK]")] |= Attr.LSTRIP

    @property
    def n_tokens(self) -> int:
        return len(self.texts)

    def attr(self, token_id: int) -> Attr:
        return Attr(int(self.attrs[token_id]))

    def byte_token(self, byte: int) -> int:
        """llama_vocab::byte_to_token: the id standing for one raw byte."""
        if self.type in (VocabType.SPM, VocabType.UGM):
            token_id = self.token_to_id.get(f"<0x{byte:02X}>")
            if token_id is None:
                token_id = self.token_to_id.get(chr(byte))
        else:
            token_id = self.token_to_id.get(uc.BYTE_TO_CHAR[byte])
        if token_id is None:
            raise TokenizerError(f"{self.source}: no token for byte 0x{byte:02X}")
        return token_id

    def piece(self, token_id: int) -> bytes:
        """llama_token_to_piece(special=True) without lstrip: the bytes this token stands for."""
        cached = self._pieces.get(token_id)
        if cached is None:
            cached = self._pieces[token_id] = self._make_piece(token_id)
        return cached

    def _make_piece(self, token_id: int) -> bytes:
        text = self.texts[token_id]
        attr = self.attr_list[token_id]
        if self.type is VocabType.RWKV:
            from llmcore.tokenizer.rwkv import unescape_rwkv_token

            return unescape_rwkv_token(text)
        if attr & (SPECIAL_ATTRS | Attr.USER_DEFINED.value):
            return text.encode("utf-8", "surrogatepass")
        if attr & Attr.NORMAL:
            if self.type is VocabType.BPE and not self.escape_whitespaces:
                return _decode_byte_text(text)
            return text.replace(ESCAPED_SPACE, " ").encode("utf-8", "surrogatepass")
        if attr & Attr.BYTE and self.type is not VocabType.WPM:
            return bytes([int(text[3:5], 16)])
        return b""


# GPT-2 byte characters -> the latin-1 character of their byte; other characters below 256 are deleted
_BYTE_DECODE_TABLE: dict[int, int | None] = {**{cpt: None for cpt in range(256)},
                                             **{ord(c): b for c, b in uc.CHAR_TO_BYTE.items()}}


def _decode_byte_text(text: str) -> bytes:
    """llama_decode_text: GPT-2 byte characters -> bytes; other characters become [UNK_BYTE_0x..] markers."""
    decoded = text.translate(_BYTE_DECODE_TABLE)
    if len(decoded) == len(text):
        try:
            return decoded.encode("latin-1")
        except UnicodeEncodeError:
            pass
    out = bytearray()
    for c in text:
        byte = uc.CHAR_TO_BYTE.get(c)
        if byte is not None:
            out.append(byte)
        else:
            out += b"[UNK_BYTE_0x" + c.encode("utf-8", "surrogatepass").hex().encode() \
                + text.encode("utf-8", "surrogatepass") + b"]"
    return bytes(out)
