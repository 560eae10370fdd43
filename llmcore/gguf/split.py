"""Naming and metadata keys of split GGUF models (llama.cpp's gguf-split: ``name-00001-of-00003.gguf``)."""

from __future__ import annotations

import re

KEY_SPLIT_NO = "split.no"
KEY_SPLIT_COUNT = "split.count"
KEY_SPLIT_TENSORS_COUNT = "split.tensors.count"
SPLIT_KEYS = (KEY_SPLIT_NO, KEY_SPLIT_COUNT, KEY_SPLIT_TENSORS_COUNT)

_SPLIT_SUFFIX = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def split_path(prefix: str, index: int, count: int) -> str:
    """The path of split ``index`` (0-based) of ``count``, as llama.cpp's ``llama_split_path`` names it."""
    return f"{prefix}-{index + 1:05d}-of-{count:05d}.gguf"


def split_prefix(path: str, index: int, count: int) -> str | None:
    """The prefix shared by all splits, or None when ``path`` is not named as split ``index`` of ``count``."""
    match = _SPLIT_SUFFIX.search(path)
    if match is None or (int(match.group(1)), int(match.group(2))) != (index + 1, count):
        return None
    return path[: match.start()]
