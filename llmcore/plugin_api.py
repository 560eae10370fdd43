"""The backend plugin API: everything a backend plugin may import from llmcore comes from here.

A plugin (``plugins/<name>/``, or a third party's distribution) imports this module and nothing
else of llmcore; the import-linter contracts in ``pyproject.toml`` check that. It holds the hooks a
plugin implements, the Backend contract, the graph IR a backend executes (ops, value types, rope
settings and ggml's rope angles), the facts of the tensor types (block sizes, dequantization), the
KV cache types (``kv_types``: names, storage, the rounding of a stored row), the lowering
machinery device backends share (``ArenaLowering``: values as buffer references, one arena placed
by liveness), the errors a backend raises and the directory where it may keep files between runs.
It imports no backend and no model-fetching code.

A plugin registers a module through the entry-point group ``llmcore.backends``; llmcore calls its
``llmcore_backends`` hook once, at discovery, never in a hot loop.
"""

from __future__ import annotations

import pluggy

from llmcore.errors import BackendError, LLMCoreError
from llmcore.gguf import GGML_QUANT_SIZES, GGMLType, dequantize
from llmcore.graph import kv_types
from llmcore.graph.backend import Availability, Backend, Device, Executable, Subgraph, WeightData
from llmcore.graph.ir import F16, F32, I32, DType, Node, Op, is_per_row
from llmcore.graph.lowering import STEP_KEY, ArenaLowering, ArenaProgram, Ref, node_bytes, row_bytes
from llmcore.graph.rope import RopeParams, rope, rope_cos_sin, yarn_corr_dims
from llmcore.paths import cache_dir

#: version of the plugin API: this module's names, the hooks, the Backend contract, the IR's ops and
#: their numerics. A backend declares the version it targets as ``Backend.api_version``; the registry
#: refuses another major version, or a newer minor one. Minor versions only add (ops, optional
#: methods); majors break. 2.0 moved the API from ``llmcore.backends`` to this one module; 2.1 added
#: the KV cache types (``kv_types``), attention's ``flash`` param and the HADAMARD op; 2.2 the
#: mixture-of-experts ops (SIGMOID, DIV, SOFTMAX, SUM_ROWS, TOP_K, GATHER, MUL_MAT_ID, WEIGHTED_SUM)
#: and binary ops whose second operand holds one value per row (``is_per_row``); 2.3 MASK_GROUPS,
#: SLICE, CONCAT and MUL_MAT_HEADS (DeepSeek's group-limited routing and multi-head latent attention);
#: 2.4 SSM_CONV and SSM_SCAN (Mamba's recurrent state, updated in place in the caches); 2.5 ATTENTION's
#: sinks source and softcap_scale param, and SWIGLU_OAI (gpt-oss, Grok); 2.6 the lowering machinery
#: device backends share (ArenaLowering, ArenaProgram, Ref, STEP_KEY, node_bytes, row_bytes).
PLUGIN_API_VERSION = "2.6"

hookspec = pluggy.HookspecMarker("llmcore")
hookimpl = pluggy.HookimplMarker("llmcore")


@hookspec
def llmcore_backends() -> list[type]:
    """Return the :class:`Backend` subclasses this plugin provides.

    Called once when llmcore discovers plugins. Must not allocate devices or compile kernels:
    that belongs to ``Backend.probe`` (asked when the user lists or selects backends) and to
    ``Backend.__init__`` (when a model is loaded onto the backend).
    """


__all__ = [
    "PLUGIN_API_VERSION", "F16", "F32", "GGML_QUANT_SIZES", "I32", "STEP_KEY", "ArenaLowering", "ArenaProgram",
    "Availability", "Backend", "BackendError", "DType", "Device", "Executable", "GGMLType", "LLMCoreError", "Node",
    "Op", "Ref", "RopeParams", "Subgraph", "WeightData", "cache_dir", "dequantize", "hookimpl", "is_per_row",
    "kv_types", "llmcore_backends", "node_bytes", "rope", "rope_cos_sin", "row_bytes", "yarn_corr_dims",
]
