"""Model architectures: one short module each, registered by their GGUF architecture names."""

from llmcore.models import (  # noqa: F401  (each module registers its architectures)
    exaone,
    gemma,
    llama,
    llama_alike,
    olmo2,
    orion,
    phi2,
    qwen,
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
