"""Fill-in-the-middle prompts with a model's FIM tokens, as llama-server builds them for /infill
(tools/server/server-common.cpp, format_prompt_infill), in the repo-level pattern of Qwen2.5-Coder
(https://arxiv.org/pdf/2409.12186)::

    [FIM_REP]myproject\\n [FIM_SEP]filename0\\n extra chunk 0 ... [FIM_SEP]filename\\n
    [BOS] [FIM_PRE]prefix prompt [FIM_SUF]suffix [FIM_MID]

the prefix and suffix cut to fit a batch (3:1), the extra chunks to what the context leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmcore.errors import LLMCoreError
from llmcore.tokenizer import Tokenizer

#: llama-server's separator of extra chunks for a model without a file separator token
_CHUNK_SEPARATOR = "\n\n--- snippet ---\n\n"


@dataclass(frozen=True)
class ExtraChunk:
    """A file the middle may draw on: its text and name (llama-server's ``input_extra`` item)."""

    text: str
    filename: str = "tmp"


def missing_fim_tokens(tokenizer: Tokenizer) -> str:
    """llama-server's complaint about a vocabulary without FIM tokens ("" when it has them)."""
    fim = tokenizer.vocab.fim_ids
    return "".join(f"{what} token is missing. " for name, what in (("fim_pre", "prefix"), ("fim_suf", "suffix"),
                                                                   ("fim_mid", "middle")) if fim[name] is None)


def tokenize_mixed(tokenizer: Tokenizer, text: str | Sequence[str | int]) -> list[int]:
    """A string, or a list of strings and token ids (llama-server's tokenize_mixed), without BOS
    and without parsing special tokens."""
    if isinstance(text, str):
        return tokenizer.tokenize(text, add_special=False)
    tokens: list[int] = []
    for part in text:
        tokens += tokenizer.tokenize(part, add_special=False) if isinstance(part, str) else [int(part)]
    return tokens


def infill_prompt(tokenizer: Tokenizer, prefix: str | Sequence[str | int], suffix: str | Sequence[str | int],
                  extra: Sequence[ExtraChunk] = (), prompt: Sequence[int] = (), *, n_batch: int, n_ctx: int,
                  n_predict: int = -1, spm_infill: bool = False) -> list[int]:
    """The tokens of an infill request: ``prompt`` (tokens, already tokenized with special tokens
    parsed) is where the middle starts; ``n_batch``, ``n_predict`` and ``n_ctx`` set the budget as
    llama-server's -b, -n and slot context do; ``spm_infill`` puts the suffix first (--spm-infill)."""
    missing = missing_fim_tokens(tokenizer)
    if missing:
        raise LLMCoreError(f"Infill is not supported by this model: {missing.strip()}")
    fim = tokenizer.vocab.fim_ids
    words = lambda text: tokenizer.tokenize(text, add_special=False)  # noqa: E731
    extra_tokens: list[int] = []
    if fim["fim_rep"] is not None:
        extra_tokens += [fim["fim_rep"], *words("myproject\n")]
    for chunk in extra:
        if fim["fim_sep"] is not None:
            extra_tokens += [fim["fim_sep"], *words(chunk.filename + "\n")]
        else:
            extra_tokens += words(_CHUNK_SEPARATOR)
        extra_tokens += words(chunk.text)
    if fim["fim_sep"] is not None:
        extra_tokens += [fim["fim_sep"], *words("filename\n")]
    prefix_tokens, suffix_tokens = tokenize_mixed(tokenizer, prefix), tokenize_mixed(tokenizer, suffix)
    n_prefix = min(len(prefix_tokens), 3 * (n_batch // 4))
    n_suffix = min(len(suffix_tokens), max(0, n_batch // 4 - (2 + len(prompt))))
    n_extra = min(max(0, n_ctx - n_batch - 2 * n_predict), len(extra_tokens))
    head = [fim["fim_pre"], *prefix_tokens[len(prefix_tokens) - n_prefix:], *prompt]
    tail = [fim["fim_suf"], *suffix_tokens[:n_suffix]]
    if spm_infill:
        head, tail = tail, head
    bos = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id is not None else []
    return extra_tokens[len(extra_tokens) - n_extra:] + bos + head + tail + [fim["fim_mid"]]


__all__ = ["ExtraChunk", "infill_prompt", "missing_fim_tokens", "tokenize_mixed"]
