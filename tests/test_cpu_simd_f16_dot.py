"""cpu_simd's one-token f16 product is ggml_vec_dot_f16 bit for bit (four vectors of 16 lanes, 64 values
a step, the tail in double), at every ISA level: an MoE's f16 router and an f16 model decode through it
(tests/fixtures/f16/vec_dot.npz, computed by libggml-cpu with scripts/make_f16_dot_goldens.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmcore.engine.registry import availability, backend_classes

GOLDENS = Path(__file__).parent / "fixtures" / "f16" / "vec_dot.npz"
pytestmark = pytest.mark.skipif("cpu_simd" not in backend_classes() or not availability("cpu_simd").usable,
                                reason="the cpu_simd plugin is not installed or cannot build its kernels here")


@pytest.mark.parametrize("level", ["avx512", "avx2", "scalar"])
def test_vec_dot_f16_is_ggmls(level):
    from llmcore.gguf import GGMLType
    from llmcore_cpu_simd import isa, library

    if level not in isa.supported_levels():
        pytest.skip(f"this CPU cannot run the {level} build")
    lib, ffi = library.load(level), library.ffi
    vec_dot = lib.lc_traits[int(GGMLType.F16)].vec_dot
    goldens = np.load(GOLDENS)
    lengths = sorted({int(name.split(".")[0]) for name in goldens.files})
    for n in lengths:
        w, x, expected = goldens[f"{n}.w"], goldens[f"{n}.x"], goldens[f"{n}.dots"]
        dots = np.zeros(len(w), np.float32)
        for r in range(len(w)):
            vec_dot(n, ffi.cast("float *", ffi.from_buffer(dots[r:])), ffi.from_buffer(w[r]),
                               ffi.from_buffer(x))
        assert np.array_equal(dots.view(np.uint32), expected.view(np.uint32)), f"n={n}: {dots} != {expected}"
