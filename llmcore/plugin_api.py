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

import sys
from importlib.metadata import entry_points
from typing import ClassVar

import pluggy

from llmcore.errors import BackendError, LLMCoreError
from llmcore.gguf import GGML_QUANT_SIZES, GGMLType, dequantize
from llmcore.graph import kv_types
from llmcore.graph.backend import Availability, Backend, Device, Executable, Subgraph, WeightData
from llmcore.graph.ir import F16, F32, I32, DType, Node, Op, is_per_row
from llmcore.graph.lowering import STEP_KEY, ArenaLowering, ArenaProgram, Ref, node_bytes, row_bytes
from llmcore.graph.rope import RopeParams, mrope_cos_sin, rope, rope_cos_sin, rope_multi, yarn_corr_dims
from llmcore.graph.scheduler import ScheduledSubgraph
from llmcore.host import host_cpu
from llmcore.paths import cache_dir
from llmcore.quants.build import tables_header as ggml_tables_header

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
#: device backends share (ArenaLowering, ArenaProgram, Ref, STEP_KEY, node_bytes, row_bytes); 2.7
#: backends whose devices are other machines: ``WeightData.file``/``offset``, ``Backend.configure``,
#: discovery (``discover_backends``, ``probe_backend``, ``host_backends``) and ``ScheduledSubgraph``; 2.8
#: ``ggml_tables_header`` (ggml-common.h's i-quant grids, sign tables and FP4/IQ4 levels as C arrays);
#: 2.9 RWKV's EXP, L2_NORM, TOKEN_SHIFT, RWKV_WKV6, RWKV_WKV7, GATED_LINEAR_ATTN and ATTENTION's no_cache;
#: 2.10 ROPE_MULTI (Qwen2-VL's M-RoPE and its vision encoder's 2-D rotation) with ``rope_multi`` and
#: ``mrope_cos_sin``; 2.11 ``Backend.pipelines`` (steps of a backend whose devices are other machines
#: kept in flight together); 2.12 ``host_cpu`` (this CPU in one line, for caches of timed choices);
#: 2.13 ``Backend.build_id`` (the code a backend runs, so that timings of other code are not reused).
PLUGIN_API_VERSION = "2.13"

hookspec = pluggy.HookspecMarker("llmcore")
hookimpl = pluggy.HookimplMarker("llmcore")

#: the entry-point group a plugin registers its hook module in
ENTRY_POINT_GROUP = "llmcore.backends"


@hookspec
def llmcore_backends() -> list[type]:
    """Return the :class:`Backend` subclasses this plugin provides.

    Called once when llmcore discovers plugins. Must not allocate devices or compile kernels:
    that belongs to ``Backend.probe`` (asked when the user lists or selects backends) and to
    ``Backend.__init__`` (when a model is loaded onto the backend).
    """


def discover_backends() -> dict[str, type[Backend]]:
    """Every backend class the installed plugins provide, by name: each ``llmcore.backends`` entry
    point's ``llmcore_backends`` hook. A plugin that fails to import (a missing dependency, a failed
    build) is listed as an unusable backend named after its entry point, with the error as its
    reason, rather than hiding the others. llmcore's registry calls it once per process; a backend
    that runs the graph on another machine calls it there to find that machine's backends."""
    manager = pluggy.PluginManager("llmcore")
    manager.add_hookspecs(sys.modules[__name__])
    classes: dict[str, type[Backend]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry.name) is not None:
            continue  # the same distribution found twice on sys.path
        try:
            manager.register(entry.load(), name=entry.name)
        except Exception as error:  # any failure of third-party code at import
            reason = f"plugin module {entry.value} failed to import: {type(error).__name__}: {error}"
            classes[entry.name] = type(f"Unloadable[{entry.name}]", (_Unloadable,), {"name": entry.name, "reason": reason})
    for provided in manager.hook.llmcore_backends():
        for cls in provided:
            classes[cls.name] = cls
    return classes


def probe_backend(cls: type[Backend]) -> Availability:
    """Whether backend ``cls`` can run here: refused when it targets an incompatible plugin API,
    else what its ``probe`` says (a probe that raises is reported as the reason)."""
    problem = api_mismatch(cls)
    if problem:
        return Availability(False, problem)
    try:
        return cls.probe()
    except Exception as error:  # a bug in third-party code must not break listing or choosing
        return Availability(False, f"probe raised {type(error).__name__}: {error}")


def host_backends() -> list[type[Backend]]:
    """The usable backends of this machine that compute in host memory (``runs_on_host``), best
    first: the last of them, ``reference``, runs every op."""
    usable = [cls for cls in discover_backends().values() if cls.runs_on_host and probe_backend(cls).usable]
    return sorted(usable, key=lambda cls: -cls.priority)


def _targeted_api(cls: type[Backend]) -> tuple[int, ...] | None:
    """(major, minor) of the plugin API ``cls`` declares, or None when it is not MAJOR.MINOR."""
    try:
        return tuple(int(part) for part in cls.api_version.split("."))[:2]
    except ValueError:
        return None


def api_mismatch(cls: type[Backend]) -> str | None:
    """Why ``cls`` cannot work with this llmcore's plugin API, or None. It must target the same
    major version, and a minor version no newer than llmcore's."""
    wanted = _targeted_api(cls)
    if wanted is None:
        return f"declares api_version {cls.api_version!r}, not MAJOR.MINOR"
    have = tuple(int(part) for part in PLUGIN_API_VERSION.split("."))
    if wanted[0] != have[0]:
        return (f"written for plugin API {cls.api_version}, but this llmcore provides {PLUGIN_API_VERSION}: "
                f"install a release of the plugin built for API {have[0]}.x")
    if wanted > have:
        return (f"needs plugin API {cls.api_version}, but this llmcore provides {PLUGIN_API_VERSION}: "
                f"upgrade llmcore")
    return None


class _Unloadable(Backend):
    """Stands for a plugin that failed to import: never usable, its probe says why."""

    priority = -(10**9)
    api_version = PLUGIN_API_VERSION  # its import failed, not its API: the probe gives the reason
    reason: ClassVar[str] = ""

    @classmethod
    def probe(cls) -> Availability:
        return Availability(False, cls.reason)


__all__ = [
    "PLUGIN_API_VERSION", "F16", "F32", "GGML_QUANT_SIZES", "I32", "STEP_KEY", "ArenaLowering", "ArenaProgram",
    "Availability", "Backend", "BackendError", "DType", "Device", "Executable", "GGMLType", "LLMCoreError", "Node",
    "Op", "Ref", "RopeParams", "Subgraph", "WeightData", "cache_dir", "dequantize", "ggml_tables_header", "hookimpl",
    "host_cpu", "is_per_row",
    "kv_types", "llmcore_backends", "mrope_cos_sin", "node_bytes", "rope", "rope_cos_sin", "rope_multi", "row_bytes",
    "yarn_corr_dims",
]
