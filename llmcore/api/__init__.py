"""The public, typed Python API.

``LLM`` is the high-level entry point (llama-cpp-python's counterpart). The low-level names,
llama.h's counterparts, are re-exported here so that users need not know the engine's layout:
``Context`` (decode batches, the ``seq_*`` operations on the KV cache), ``Batch``, ``SamplingParams``
with ``Sampler`` and ``sampler_for``, and ``Generation`` with its ``Step``\\s (one sequence's
sample-accept loop, the one the server and ``LLM`` both run).
"""

from llmcore.api.llm import LLM
from llmcore.api.types import Completion, CompletionChoice, Timings, Usage
from llmcore.engine.batch import Batch
from llmcore.engine.context import Context
from llmcore.engine.sampling import Sampler, SamplingError, SamplingParams
from llmcore.engine.sequence import Generation, Step, sampler_for

__all__ = ["LLM", "Completion", "CompletionChoice", "Timings", "Usage",
           "Batch", "Context", "Generation", "Sampler", "SamplingError", "SamplingParams", "Step", "sampler_for"]
