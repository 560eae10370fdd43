"""Model architectures: one short module each, registered by their GGUF architecture names."""

from llmcore.models import (  # noqa: F401  (each module registers its architectures)
    baichuan,
    bert,
    bloom,
    chatglm,
    codeshell,
    command_r,
    exaone,
    falcon,
    gemma,
    gemma2,
    gemma3,
    glm4,
    gpt2,
    gptneox,
    llama,
    llama_alike,
    mpt,
    olmo,
    olmo2,
    orion,
    phi2,
    phi3,
    plamo,
    qwen,
    refact,
    seed_oss,
    smollm3,
    stablelm,
    starcoder2,
)
from llmcore.models.base import (
    ARCHITECTURES,
    Architecture,
    HParams,
    WeightSpec,
    architecture_for,
)

__all__ = ["ARCHITECTURES", "Architecture", "HParams", "WeightSpec", "architecture_for"]
