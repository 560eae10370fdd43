"""Model architectures: one short module each, registered by their GGUF architecture names."""

from llmcore.models import llama  # noqa: F401  (registers)
from llmcore.models.base import ARCHITECTURES, Architecture, HParams, WeightSpec, architecture_for

__all__ = ["ARCHITECTURES", "Architecture", "HParams", "WeightSpec", "architecture_for"]
