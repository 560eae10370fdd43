"""The public backend plugin API: everything a third-party backend imports comes from here."""

from llmcore.backends.base import Availability, Backend, Device, Executable, Subgraph, WeightData
from llmcore.backends.hookspecs import hookimpl
from llmcore.graph.ir import F16, F32, I32, Node, Op

__all__ = [
    "F16", "F32", "I32", "Availability", "Backend", "Device", "Executable", "Node", "Op",
    "Subgraph", "WeightData", "hookimpl",
]
