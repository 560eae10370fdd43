"""The public backend plugin API: everything a third-party backend imports comes from here."""

#: version of the plugin API: the hooks, the Backend contract, the IR's ops and their numerics. A backend
#: declares the version it targets as ``Backend.api_version``; the registry refuses another major
#: version, or a newer minor one. Minor versions only add (ops, optional methods); majors break.
PLUGIN_API_VERSION = "1.1"

from llmcore.backends.base import Availability, Backend, Device, Executable, Subgraph, WeightData
from llmcore.backends.hookspecs import hookimpl
from llmcore.backends.reference.kernels import rope_cos_sin
from llmcore.graph.ir import F16, F32, I32, Node, Op
from llmcore.hub.cache import cache_dir

__all__ = [
    "PLUGIN_API_VERSION", "F16", "F32", "I32", "Availability", "Backend", "Device", "Executable", "Node", "Op",
    "Subgraph", "WeightData", "cache_dir", "hookimpl", "rope_cos_sin",
]
