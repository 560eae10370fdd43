"""Taps: extra graph outputs that expose intermediate values of a forward pass to an observer.

The one tap llmcore needs is llama-imatrix's: the activations entering each weight matrix
multiplication (ggml's ``cb_eval`` sees them as a ``mul_mat``'s second source). A tapped graph has
the same nodes as the plain one; only its outputs grow, so the scheduler returns those values from
whichever backend computed them, and a graph built without taps runs exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from llmcore.graph.ir import Graph, Op

#: the prefix of a tapped output's name; the rest names the tap
_PREFIX = "mul_mat_input:"


def tap_mul_mat_inputs(graph: Graph) -> Graph:
    """``graph`` with one more output per weight matrix multiplication: its activations, named by
    the GGUF tensor the weight comes from. The row ranges of one fused tensor that share their
    activations (a QKV matrix split into Q, K and V) are one multiplication, as in llama.cpp."""
    outputs = dict(graph.outputs)
    seen: set[tuple[str, int]] = set()
    for node in graph.nodes:
        if node.op is not Op.MUL_MAT or node.srcs[0].op is not Op.WEIGHT:
            continue
        weight, activations = node.srcs
        tensor = weight.params.get("tensor", weight.name)
        if (tensor, activations.id) not in seen:
            seen.add((tensor, activations.id))
            outputs[f"{_PREFIX}{len(seen)}:{tensor}"] = activations
    return Graph(graph.nodes, outputs, graph.inputs, graph.n_tokens, graph.n_outputs)


def mul_mat_inputs(results: Mapping[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """The tapped values among a run's ``results``, in graph order: (tensor name, activations as
    float32 [rows, columns the weight reads])."""
    for name, value in results.items():
        if name.startswith(_PREFIX):
            tensor = name[len(_PREFIX):].split(":", 1)[1]
            yield tensor, value.reshape(-1, value.shape[-1])
