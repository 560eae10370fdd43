"""BPE pre-tokenizers: llama.cpp's ``unicode_regex_split`` for every ``tokenizer.ggml.pre`` it knows.

llama.cpp splits text with a list of regexes applied one after the other, each refining the pieces
of the previous one. A few regexes have hand-written C++ splitters (GPT-2, Llama 3, Qwen2, Qwen3.5,
Kimi-K2, AFMoE digits, newlines), which differ from the regex in corner cases; the others run through
``std::regex`` on a "collapsed" text where every non-ASCII code point is replaced by one byte naming
its Unicode category. Both are reproduced here on top of Python's ``re`` (C speed): the hand-written
splitters as equivalent regexes over a per-code-point class string, the others on the same collapsed
text with the same regex rewrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from llmcore.errors import TokenizerError
from llmcore.tokenizer import unicode as uc

# Regex lists of llm_tokenizer_bpe (llama-vocab.cpp), by pre-tokenizer type.
# LLAMA3, DBRX, SMAUG, CHATGLM4
_LLAMA3 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# JAIS2
_JAIS2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}",
)
# DEEPSEEK_LLM
_DEEPSEEK_LLM = (
    '[\r\n]',
    r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
)
# DEEPSEEK3_LLM, HUNYUAN_DENSE, JOYAI_LLM, HY_V4
_DEEPSEEK3_LLM = (
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+',
)
# SPARK2_5
_SPARK2_5 = (
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+',
    r"\p{N}",
)
# YOUTU
_YOUTU = (
    r"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# DEEPSEEK_CODER
_DEEPSEEK_CODER = (
    '[\r\n]',
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
)
# FALCON
_FALCON = (
    r"[\p{P}\$\+<=>\^~\|`]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"[0-9][0-9][0-9]",
)
# STARCODER, REFACT, COMMAND_R, SMOLLM, CODESHELL, EXAONE, MINERVA, MELLUM2
_STARCODER = (
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
)
# GPT2, MPT, OLMO, JAIS, TRILLION, GRANITE_DOCLING
_GPT2 = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
)
# STABLELM2, QWEN2, HUNYUAN, SOLAR_OPEN, GROK_2
_STABLELM2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# QWEN35
_QWEN35 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# PORO, BLOOM, GPT3_FINNISH
_PORO = (
    r" ?[^(\s|.,!?…。，、।۔،)]+",
)
# VIKING
_VIKING = (
    r" ?[^(\s|.,!?…。，、।۔،)]+",
    r"\p{N}",
)
# TEKKEN
_TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# CHAMELEON
_CHAMELEON = (
    r"<sentinel:[0-9]+>",
    r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    r"([\t\n]|    |  )",
    r"\p{N}",
    r"[\p{P}!-/:-@\[-`{-~]",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
)
# GPT4O, MINIMAX_M2
_GPT4O = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# GRANITE_EMB_MULTI
_GRANITE_EMB_MULTI = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# TINY_AYA
_TINY_AYA = (
    r"\d{1,3}(?=(?:\d{3})*\b)",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# KIMI_K2
_KIMI_K2 = (
    r"\p{Han}+",
)
# SUPERBPE
_SUPERBPE = (
    r"\p{N}+",
    r"(?=(\d{3})+(?!\d))",
)
# BAILINGMOE
_BAILINGMOE = (
    r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
)
# SEED_CODER
_SEED_CODER = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# UFAKZEKA
_UFAKZEKA = (
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# AFMOE
_AFMOE = (
    r"\p{AFMoE_digits}",
    r"[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+",
    '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
)
# LAGUNA
_LAGUNA = (
    r"[^\n]+|[\n]+",
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# EXAONE_MOE
_EXAONE_MOE = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",
)
# GEMMA4, SARVAM_MOE
_GEMMA4 = (
    r"[^\n]+|[\n]+",
)
# MINICPM5
_MINICPM5 = (
    r"\p{N}{1,3}",
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)
# WHITESPACE
_WHITESPACE = (
    r"\S+",
)
# DEFAULT
_DEFAULT = (
    r"[\p{P}\$\+<=>\^~\|]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
)

PRE_TYPE_REGEXES: dict[str, tuple[str, ...]] = {
    "DEFAULT": _DEFAULT,
    "LLAMA3": _LLAMA3, "DBRX": _LLAMA3, "SMAUG": _LLAMA3, "CHATGLM4": _LLAMA3,
    "JAIS2": _JAIS2,
    "DEEPSEEK_LLM": _DEEPSEEK_LLM,
    "DEEPSEEK3_LLM": _DEEPSEEK3_LLM, "HUNYUAN_DENSE": _DEEPSEEK3_LLM, "JOYAI_LLM": _DEEPSEEK3_LLM,
    "HY_V4": _DEEPSEEK3_LLM,
    "SPARK2_5": _SPARK2_5,
    "YOUTU": _YOUTU,
    "DEEPSEEK_CODER": _DEEPSEEK_CODER,
    "FALCON": _FALCON,
    "STARCODER": _STARCODER, "REFACT": _STARCODER, "COMMAND_R": _STARCODER, "SMOLLM": _STARCODER,
    "CODESHELL": _STARCODER, "EXAONE": _STARCODER, "MINERVA": _STARCODER, "MELLUM2": _STARCODER,
    "GPT2": _GPT2, "MPT": _GPT2, "OLMO": _GPT2, "JAIS": _GPT2, "TRILLION": _GPT2,
    "GRANITE_DOCLING": _GPT2,
    "STABLELM2": _STABLELM2, "QWEN2": _STABLELM2, "HUNYUAN": _STABLELM2, "SOLAR_OPEN": _STABLELM2,
    "GROK_2": _STABLELM2,
    "QWEN35": _QWEN35,
    "PORO": _PORO, "BLOOM": _PORO, "GPT3_FINNISH": _PORO,
    "VIKING": _VIKING,
    "TEKKEN": _TEKKEN,
    "CHAMELEON": _CHAMELEON,
    "GPT4O": _GPT4O, "MINIMAX_M2": _GPT4O,
    "GRANITE_EMB_MULTI": _GRANITE_EMB_MULTI,
    "TINY_AYA": _TINY_AYA,
    "KIMI_K2": _KIMI_K2,
    "SUPERBPE": _SUPERBPE,
    "BAILINGMOE": _BAILINGMOE,
    "SEED_CODER": _SEED_CODER,
    "UFAKZEKA": _UFAKZEKA,
    "AFMOE": _AFMOE,
    "LAGUNA": _LAGUNA,
    "EXAONE_MOE": _EXAONE_MOE,
    "GEMMA4": _GEMMA4, "SARVAM_MOE": _GEMMA4,
    "MINICPM5": _MINICPM5,
    "WHITESPACE": _WHITESPACE,
}


@dataclass(frozen=True)
class PreTokenizerConfig:
    """What a ``tokenizer.ggml.pre`` name selects in llama_vocab::impl::load."""

    pre_type: str
    clean_spaces: bool = True
    ignore_merges: bool = False
    add_bos: bool = False  # turns add_bos on (metadata may still override)
    no_bos: bool = False  # the vocabulary has no BOS token unless the metadata names one
    escape_whitespaces: bool = False  # SPM-style BPE: spaces become U+2581 before merging
    add_sep: bool = False


def _configs(names: str, **settings: object) -> dict[str, PreTokenizerConfig]:
    pre_type = settings.pop("pre_type")
    return {name: PreTokenizerConfig(pre_type, **settings) for name in names.split()}  # type: ignore[arg-type]


# tokenizer.ggml.pre -> configuration, as in llama_vocab::impl::load.
PRE_TOKENIZERS: dict[str, PreTokenizerConfig] = {
    **_configs("default", pre_type="DEFAULT"),
    **_configs("minicpm5", pre_type="MINICPM5", ignore_merges=True),
    **_configs("llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano",
               pre_type="LLAMA3", ignore_merges=True, add_bos=True),
    **_configs("deepseek-llm", pre_type="DEEPSEEK_LLM", clean_spaces=False),
    **_configs("deepseek-coder", pre_type="DEEPSEEK_CODER", clean_spaces=False),
    **_configs("deepseek-v3", pre_type="DEEPSEEK3_LLM", clean_spaces=False),
    **_configs("spark2_5", pre_type="SPARK2_5", clean_spaces=False),
    **_configs("youtu", pre_type="YOUTU", clean_spaces=False, ignore_merges=True),
    **_configs("falcon", pre_type="FALCON"),
    **_configs("mpt", pre_type="MPT"),
    **_configs("starcoder", pre_type="STARCODER"),
    **_configs("gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert exaone4",
               pre_type="GPT2"),
    **_configs("jais-2", pre_type="JAIS2"),
    **_configs("gemma4 granite-embed-multi-311m", pre_type="GEMMA4", escape_whitespaces=True),
    **_configs("sarvam-moe", pre_type="SARVAM_MOE", escape_whitespaces=True, clean_spaces=False),
    **_configs("jina-v1-en jina-v2-code roberta-bpe", pre_type="GPT2", add_sep=True),
    **_configs("whitespace", pre_type="WHITESPACE"),
    **_configs("refact", pre_type="REFACT"),
    **_configs("command-r", pre_type="COMMAND_R", clean_spaces=False),
    **_configs("qwen2 deepseek-r1-qwen kormo f2llmv2", pre_type="QWEN2", clean_spaces=False),
    **_configs("qwen35", pre_type="QWEN35", clean_spaces=False),
    **_configs("stablelm2", pre_type="STABLELM2"),
    **_configs("olmo", pre_type="OLMO"),
    **_configs("dbrx", pre_type="DBRX"),
    **_configs("smaug-bpe", pre_type="SMAUG"),
    **_configs("poro-chat", pre_type="PORO", clean_spaces=False),
    **_configs("chatglm-bpe", pre_type="CHATGLM4", no_bos=True),
    **_configs("glm4 glm5", pre_type="CHATGLM4", no_bos=True, ignore_merges=True),
    **_configs("viking", pre_type="VIKING", clean_spaces=False),
    **_configs("jais", pre_type="JAIS"),
    **_configs("tekken", pre_type="TEKKEN", clean_spaces=False, ignore_merges=True, add_bos=True),
    **_configs("smollm", pre_type="SMOLLM", clean_spaces=False),
    **_configs("codeshell", pre_type="CODESHELL"),
    **_configs("bloom", pre_type="BLOOM"),
    **_configs("gpt3-finnish", pre_type="GPT3_FINNISH"),
    **_configs("exaone", pre_type="EXAONE"),
    **_configs("exaone-moe", pre_type="EXAONE_MOE"),
    **_configs("chameleon", pre_type="CHAMELEON", add_bos=True, clean_spaces=False),
    **_configs("minerva-7b", pre_type="MINERVA"),
    **_configs("megrez", pre_type="QWEN2"),
    **_configs("gpt-4o llama4 kanana2 talkie", pre_type="GPT4O", clean_spaces=False),
    **_configs("granite-embed-multi-97m", pre_type="GRANITE_EMB_MULTI", clean_spaces=False, ignore_merges=True),
    **_configs("tiny_aya cohere2moe", pre_type="TINY_AYA", clean_spaces=False),
    **_configs("superbpe", pre_type="SUPERBPE", clean_spaces=False),
    **_configs("trillion", pre_type="TRILLION", clean_spaces=False),
    **_configs("granite-docling", pre_type="GRANITE_DOCLING", clean_spaces=False),
    **_configs("bailingmoe bailingmoe2 llada-moe", pre_type="BAILINGMOE", clean_spaces=False),
    **_configs("seed-coder", pre_type="SEED_CODER", clean_spaces=False),
    **_configs("hunyuan", pre_type="HUNYUAN", clean_spaces=False),
    **_configs("hunyuan-dense", pre_type="HUNYUAN_DENSE", clean_spaces=False),
    **_configs("hy_v4", pre_type="HY_V4", clean_spaces=False),
    **_configs("joyai-llm", pre_type="JOYAI_LLM", clean_spaces=False),
    **_configs("kimi-k2", pre_type="KIMI_K2", clean_spaces=False),
    **_configs("ufakzeka", pre_type="UFAKZEKA", clean_spaces=False),
    **_configs("grok-2", pre_type="GROK_2", clean_spaces=False),
    **_configs("afmoe", pre_type="AFMOE", clean_spaces=False),
    **_configs("laguna", pre_type="LAGUNA", clean_spaces=False),
    **_configs("minimax-m2", pre_type="MINIMAX_M2", clean_spaces=False),
    **_configs("solar-open", pre_type="SOLAR_OPEN", clean_spaces=False),
    **_configs("mellum2", pre_type="MELLUM2"),
}


def pre_tokenizer_config(name: str, source: str) -> PreTokenizerConfig:
    """The configuration for ``tokenizer.ggml.pre`` = ``name``; TokenizerError if llama.cpp does not know it."""
    try:
        return PRE_TOKENIZERS[name]
    except KeyError:
        raise TokenizerError(f"{source}: tokenizer.ggml.pre: unknown pre-tokenizer type {name!r}") from None


# ---------------------------------------------------------------------------------------------
# Class strings: one character per code point, so that Python regexes can test llama.cpp's flags.

# Hand-written splitters: ASCII stays itself, other code points become a private-use class mark.
_MARK_LETTER, _MARK_NUMBER, _MARK_SPACE, _MARK_ACCENT, _MARK_OTHER = "\ue000\ue001\ue002\ue003\ue004"
# std::regex path: other code points become the byte llama.cpp collapses their category to.
_COLLAPSED = {uc.NUMBER: 0xD1, uc.LETTER: 0xD2, uc.PUNCTUATION: 0xD3, uc.ACCENT_MARK: 0xD4, uc.SYMBOL: 0xD5}
_COLLAPSED_OTHER, _COLLAPSED_SPACE = 0xD0, 0x0B


@cache
def _class_lookup(collapsed: bool) -> np.ndarray:
    """Code point -> class character for non-ASCII code points (a uint32 array over all code points)."""
    cats = uc.category_table()
    if collapsed:
        table = np.full(uc.MAX_CODEPOINTS, _COLLAPSED_OTHER, dtype=np.uint32)
        for bit, value in _COLLAPSED.items():
            table[cats == bit] = value
        table[list(uc.WHITESPACE_CODEPOINTS)] = _COLLAPSED_SPACE
    else:
        table = np.full(uc.MAX_CODEPOINTS, ord(_MARK_OTHER), dtype=np.uint32)
        for bit, mark in ((uc.LETTER, _MARK_LETTER), (uc.NUMBER, _MARK_NUMBER), (uc.ACCENT_MARK, _MARK_ACCENT)):
            table[cats == bit] = ord(mark)
        table[list(uc.WHITESPACE_CODEPOINTS)] = ord(_MARK_SPACE)
    table[:128] = np.arange(128)
    return table


def _class_string(text: str, collapsed: bool) -> str:
    if text.isascii():
        return text
    classes = _class_lookup(collapsed)[uc.codepoints(text)]
    return classes.astype("<u4").tobytes().decode("utf-32-le")


_SPACE_TO_VT = {cpt: 0x0B for cpt in uc.WHITESPACE_CODEPOINTS if cpt >= 128}

# Character classes of the hand-written splitters, over class strings.
_L = "A-Za-z" + _MARK_LETTER
_N = "0-9" + _MARK_NUMBER
_W = "\t\n\x0b\x0c\r " + _MARK_SPACE
_M = _MARK_ACCENT
_WS_TAIL = f"|[{_W}]+(?=[{_W}][^{_W}])|[{_W}]+"  # \s+(?!\S)|\s+ as the C++ loops implement them
_CONTRACTIONS_ANY_CASE = "'[sStTmMdD]|'(?:[rR][eE]|[vV][eE]|[lL][lL])"

_CUSTOM_PATTERNS = {
    # 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    _GPT2[0]: f"'[stmd]|'(?:re|ve|ll)| ?[{_L}]+| ?[{_N}]+| ?[^{_W}{_L}{_N}]+" + _WS_TAIL,
    _LLAMA3[0]: (f"{_CONTRACTIONS_ANY_CASE}|[^\r\n{_N}]?[{_L}]+|[{_N}]{{1,3}}| ?[^{_W}{_L}{_N}]+[\r\n]*"
                 f"|[{_W}]*[\r\n]" + _WS_TAIL),
    _STABLELM2[0]: (f"{_CONTRACTIONS_ANY_CASE}|[^\r\n{_N}]?[{_L}]+|[{_N}]| ?[^{_W}{_L}{_N}]+[\r\n]*"
                    f"|[{_W}]*[\r\n]" + _WS_TAIL),
    _QWEN35[0]: (f"{_CONTRACTIONS_ANY_CASE}|[^\r\n{_N}]?[{_L}{_M}]+|[{_N}]| ?[^{_W}{_L}{_M}{_N}]+[\r\n]*"
                 f"|[{_W}]*[\r\n]" + _WS_TAIL),
}

Pieces = list[tuple[int, int]]  # [start, end) code point ranges of the text


def _regex_step(pattern: re.Pattern[str], view: str, keep_gaps: bool):
    """Split each piece by ``pattern`` run on the ``view`` string (a class string of the text)."""

    def step(text: str, pieces: Pieces, views: dict[str, str]) -> Pieces:
        source = views[view]
        out: Pieces = []
        for start, end in pieces:
            done = start
            for match in pattern.finditer(source[start:end]):
                lo, hi = start + match.start(), start + match.end()
                if keep_gaps and lo > done:
                    out.append((done, lo))
                if keep_gaps or hi > lo:
                    out.append((lo, hi))
                done = hi
            if keep_gaps and done < end:
                out.append((done, end))
        return out

    return step


def _afmoe_digits_step(text: str, pieces: Pieces, views: dict[str, str]) -> Pieces:
    """unicode_regex_split_custom_afmoe: cut digit runs into a 1-2 digit head and groups of three.

    Like the C++ loop, the text before a digit run stays attached to the run's first group.
    """
    source = views["classes"]
    out: Pieces = []
    for start, end in pieces:
        done = start
        for run in _DIGIT_RUN.finditer(source, start, end):
            head = (run.end() - run.start()) % 3
            cuts = range(run.start() + head, run.end() + 1, 3) if head else range(run.start() + 3, run.end() + 1, 3)
            for cut in cuts:
                out.append((done, cut))
                done = cut
        if done < end:
            out.append((done, end))
    return out


_DIGIT_RUN = re.compile(f"[{_N}]+")


def _kimi_k2_step(text: str, pieces: Pieces, views: dict[str, str]) -> Pieces:
    """unicode_regex_split_custom_kimi_k2, ported loop for loop (Han runs, cased words, digits, ...)."""
    cpts = uc.codepoints(text).tolist()
    cats = uc.category_table()[uc.codepoints(text)].tolist()
    out: Pieces = []
    for start, end in pieces:
        _kimi_k2_piece(cpts, cats, start, end, out)
    return out


def _kimi_k2_piece(cpts: list[int], cats: list[int], start: int, end: int, out: Pieces) -> None:
    """Split cpts[start:end] (one piece) the Kimi-K2 way, appending the new pieces to ``out``."""

    def cat(pos: int) -> int:
        return cats[pos] if start <= pos < end else 0

    def cpt(pos: int) -> int:
        return cpts[pos] if start <= pos < end else -1

    def space(pos: int) -> bool:
        return start <= pos < end and cpts[pos] in uc.WHITESPACE_CODEPOINTS

    def letter(pos: int) -> bool:
        return bool(cat(pos) & uc.LETTER) and not _is_han(cpt(pos))

    prev = start

    def emit(stop: int) -> int:
        nonlocal prev
        length = stop - prev
        if length > 0:
            out.append((prev, stop))
        prev = stop
        return length

    pos = start
    while pos < end:
        c, flags = cpts[pos], cats[pos]
        if _is_han(c):
            while _is_han(cpt(pos)):
                pos += 1
            emit(pos)
            continue
        can_lead = not (c in (0x0D, 0x0A) or flags & (uc.LETTER | uc.NUMBER))
        if (flags & uc.LETTER and not _is_han(c)) or (can_lead and letter(pos + 1)):
            leading = False
            if can_lead:
                leading = True
                pos += 1
            has_letters = False
            while letter(pos):
                has_letters = True
                pos += 1
            if has_letters or (not leading and letter(pos)):
                if not has_letters:
                    pos += 1
                while letter(pos):
                    pos += 1
                if cpt(pos) == 0x27 and pos + 1 < end:
                    nxt = uc.to_lower(cpt(pos + 1))
                    if chr(nxt) in "stmd":
                        pos += 2
                    elif pos + 2 < end and chr(nxt) + chr(uc.to_lower(cpt(pos + 2))) in ("re", "ve", "ll"):
                        pos += 3
                emit(pos)
                continue
            if leading:
                pos -= 1
        if flags & uc.NUMBER:
            first = pos
            while cat(pos) & uc.NUMBER:
                pos += 1
                if pos - first >= 3:
                    emit(pos)
                    first = pos
            emit(pos)
            continue
        nxt_pos = pos + 1 if c == 0x20 else pos
        if not space(nxt_pos) and cat(nxt_pos) and not cat(nxt_pos) & (uc.LETTER | uc.NUMBER):
            pos = nxt_pos
            while not space(pos) and cat(pos) and not cat(pos) & (uc.LETTER | uc.NUMBER):
                pos += 1
            while cpt(pos) in (0x0D, 0x0A):
                pos += 1
            emit(pos)
            continue
        n_spaces, last_newline = 0, 0
        while space(pos + n_spaces):
            if cpts[pos + n_spaces] in (0x0D, 0x0A):
                last_newline = pos + n_spaces + 1
            n_spaces += 1
        if last_newline:
            pos = last_newline
        elif n_spaces > 1 and pos + n_spaces < end:
            pos += n_spaces - 1
        elif n_spaces:
            pos += n_spaces
        else:
            pos += 1
        emit(pos)


def _is_han(cpt: int) -> bool:
    """unicode_cpt_is_han: CJK ideograph blocks."""
    return any(lo <= cpt <= hi for lo, hi in _HAN_RANGES)


_HAN_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

# \p{...} spellings llama.cpp rewrites for its collapsed std::regex, and what they become.
_CATEGORY_CLASSES = {
    uc.NUMBER: "\xd1" + "0-9",
    uc.LETTER: "\xd2" + "A-Za-z",
    uc.PUNCTUATION: "\xd3" + r"!-#%-*,-/:-;?-@\[-\]_\{\}",
    uc.ACCENT_MARK: "\xd4",
    uc.SYMBOL: "\xd5" + r"\$\+<->^`\|\~",
}
_CATEGORY_NAMES = {
    r"\p{N}": uc.NUMBER, r"\p{L}": uc.LETTER, r"\p{P}": uc.PUNCTUATION, r"\p{M}": uc.ACCENT_MARK,
    r"\p{S}": uc.SYMBOL, r"\p{Lu}": uc.LETTER, r"\p{Ll}": uc.LETTER, r"\p{Lt}": uc.LETTER,
    r"\p{Lm}": uc.LETTER, r"\p{Lo}": uc.LETTER,
}


def _collapse_regex(expr: str) -> str:
    """llama.cpp's rewrite of a regex for the collapsed text: \\p{X} -> the category byte + its ASCII members."""
    out: list[str] = []
    inside = False
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            inside = True
        elif inside and c == "]" and expr[i - 1] != "\\":
            inside = False
        elif expr.startswith("\\p{", i) and i + 3 < len(expr):
            close = expr.find("}", i + 3)
            name = expr[i:close + 1] if 0 <= close <= i + 10 else ""
            if name in _CATEGORY_NAMES:
                body = _CATEGORY_CLASSES[_CATEGORY_NAMES[name]]
                out.append(body if inside else f"[{body}]")
                i = close + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _ecmascript(expr: str) -> re.Pattern[str]:
    """Compile an ECMAScript regex (as std::regex reads it, "C" locale) with Python's re."""
    if expr.endswith("$") and not expr.endswith("\\$"):
        expr = expr[:-1] + r"\Z"  # ECMAScript '$' never matches before a final newline
    return re.compile(expr, re.ASCII)


def _make_step(expr: str):
    if expr in _CUSTOM_PATTERNS:
        return _regex_step(re.compile(_CUSTOM_PATTERNS[expr] + "|.", re.DOTALL), "classes", keep_gaps=False)
    if expr == r"[^\n]+|[\n]+":
        return _regex_step(re.compile(r"[^\n]+|\n+"), "raw", keep_gaps=False)
    if expr in (r"\p{AFMoE_digits}", r"\d{1,3}(?=(?:\d{3})*\b)"):
        return _afmoe_digits_step
    if expr == r"\p{Han}+":
        return _kimi_k2_step
    if any(name in expr for name in _CATEGORY_NAMES):
        if not expr.isascii():
            raise TokenizerError(f"regex {expr!r} mixes unicode categories and non-ASCII characters")
        return _regex_step(_ecmascript(_collapse_regex(expr)), "collapsed", keep_gaps=True)
    return _regex_step(_ecmascript(expr), "wide", keep_gaps=True)


class PreTokenizer:
    """Splits text into words the way llama.cpp's unicode_regex_split does for one pre-tokenizer type."""

    def __init__(self, pre_type: str) -> None:
        self.pre_type = pre_type
        self._steps = [_make_step(expr) for expr in PRE_TYPE_REGEXES[pre_type]]

    def split(self, text: str) -> list[str]:
        """The words of ``text`` (not byte-encoded), in order; their concatenation is ``text``."""
        if not text:
            return []
        views = _Views(text)
        pieces: Pieces = [(0, len(text))]
        for step in self._steps:
            pieces = step(text, pieces, views)
        return [text[a:b] for a, b in pieces]


class _Views(dict):
    """The class strings of one text, each computed on first use."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def __missing__(self, kind: str) -> str:
        text = self._text
        if kind == "raw":
            value = text
        elif kind == "wide":
            value = text if text.isascii() else text.translate(_SPACE_TO_VT)
        else:
            value = _class_string(text, collapsed=(kind == "collapsed"))
        self[kind] = value
        return value
