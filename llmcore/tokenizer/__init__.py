"""Tokenizers read from GGUF metadata, reproducing llama.cpp's tokenization exactly.

SPM (llama), byte-level BPE with every llama.cpp pre-tokenizer, WordPiece (BERT), Unigram (T5) and
RWKV vocabularies; special tokens, detokenization and streaming decoding.
"""

from llmcore.tokenizer.core import Tokenizer
from llmcore.tokenizer.detokenizer import StreamDecoder
from llmcore.tokenizer.vocab import Attr, TokenType, VocabType

__all__ = ["Attr", "StreamDecoder", "TokenType", "Tokenizer", "VocabType"]
