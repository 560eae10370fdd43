"""Make the kernel goldens of tests/test_cpu_simd_f16_dot.py: ggml_vec_dot_f16 (the one-token
product of an f16 weight, an MoE router's or an f16 model's) of random f16 rows with random f16
activation rows, at row lengths around and past its 64-value steps, computed by llama-cpp-python's
libggml-cpu (the x86 AVX-512 build the model goldens come from).

    /work/venv-oracle/bin/python scripts/make_f16_dot_goldens.py

Writes tests/fixtures/f16/vec_dot.npz: per length n, ``<n>.w`` (float16 [8, n]), ``<n>.x`` (float16
[n]) and ``<n>.dots`` (float32 [8]).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

import llama_cpp

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "f16" / "vec_dot.npz"
LENGTHS = (33, 64, 100, 576, 1000, 1024, 2048)
N_ROWS = 8


def main() -> None:
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    ctypes.CDLL(str(lib_dir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(lib_dir / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    cpu.ggml_cpu_init()
    dot = cpu.ggml_vec_dot_f16
    dot.restype = None
    dot.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    rng = np.random.default_rng(16)
    arrays = {}
    for n in LENGTHS:
        w = rng.standard_normal((N_ROWS, n)).astype(np.float16)
        x = rng.standard_normal(n).astype(np.float16)
        dots = np.zeros(N_ROWS, np.float32)
        for r in range(N_ROWS):
            dot(n, dots[r:].ctypes.data, 0, w[r].ctypes.data, 0, x.ctypes.data, 0, 1)
        arrays.update({f"{n}.w": w, f"{n}.x": x, f"{n}.dots": dots})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, **arrays)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
