"""The conformance kit's parts, in process: its cases cover every op with valid data, its bound
table covers every op, its comparison measures NMSE as test-backend-ops defines it, and its cases
are sensitive to the mistakes they exist to catch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gguf import quants

from llmcore.backends.reference import ReferenceBackend
from llmcore.conformance.cases import WEIGHT_TYPES, op_cases, random_weight
from llmcore.conformance.compare import NMSE_BOUNDS, compare
from llmcore.conformance.runner import run_case
from llmcore.gguf import dequantize
from llmcore.graph.ir import Op

COMPUTED_OPS = set(Op) - {Op.INPUT, Op.WEIGHT, Op.CACHE}


def test_every_op_has_cases_and_a_bound():
    assert {case.op for case in op_cases()} == COMPUTED_OPS
    assert set(NMSE_BOUNDS) == COMPUTED_OPS


@pytest.mark.parametrize("w_type", WEIGHT_TYPES, ids=lambda t: t.name)
def test_random_weights_are_valid_blocks_of_their_type(w_type):
    w = random_weight("w", w_type, (3, 512), np.random.default_rng(0))
    ours = dequantize(w.raw, w.type, w.shape)
    raw = w.raw.view(np.uint8) if w_type.name == "BF16" else w.raw
    oracle = quants.dequantize(raw, w_type).reshape(w.shape)  # the gguf package's own decoder
    np.testing.assert_array_equal(ours, oracle)
    assert np.isfinite(ours).all() and ours.std() > 0


def test_nmse_is_test_backend_ops_definition():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((4, 9)).astype(np.float32)
    got = ref * np.float32(1 + 1e-3)  # relative error 1e-3 everywhere: NMSE 1e-6
    assert compare("out", got, ref, 2e-6) is None
    problem = compare("out", got, ref, 5e-7)
    worst = np.unravel_index(np.abs(ref).argmax(), ref.shape)
    assert problem is not None and "NMSE 1e-06 exceeds the bound 5e-07" in str(problem)
    assert f"worst element [{worst[0]}, {worst[1]}]" in str(problem)


def test_non_finite_values_must_match_the_reference():
    ref = np.array([[0.0, -np.inf], [1.0, 2.0]], np.float32)
    assert compare("out", ref.copy(), ref, 1e-7) is None
    got = ref.copy()
    got[1, 0] = np.nan
    assert "first at [1, 0]: got nan, reference 1" in str(compare("out", got, ref, 1e-7))


def _case(case_id: str):
    return next(case for case in op_cases() if case.id == case_id)


def test_attention_cases_catch_a_backend_that_reads_past_n_kv():
    case = _case("attention-f16-h9kv3d64-n1-kv37")
    data = case.data()
    right = run_case(ReferenceBackend(), case, data).outputs[0]
    past_n_kv = run_case(ReferenceBackend(), dataclasses.replace(case, n_kv=64), data).outputs[0]
    assert compare("out", past_n_kv, right, NMSE_BOUNDS[Op.ATTENTION]) is not None


def test_kv_store_cases_check_cells_other_steps_wrote():
    case = _case("kv_store-f16-64x576-n7")
    data = case.data()
    right = run_case(ReferenceBackend(), case, data)
    only_last_step = run_case(ReferenceBackend(), dataclasses.replace(case, n_steps=1),
                              dataclasses.replace(data, steps=data.steps[1:]))
    assert compare("cache", only_last_step.caches[case.graph.caches[0].name],
                   right.caches[case.graph.caches[0].name], NMSE_BOUNDS[Op.KV_STORE]) is not None
