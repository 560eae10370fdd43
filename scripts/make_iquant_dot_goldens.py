"""Make the kernel goldens of tests/test_cpu_simd_iquants.py: for each i-quant, ternary, FP4 and
1/2-bit type, eight weight rows of 512 values (from a matrix of that type in the fixtures
tests/fixtures/iquant/*.gguf, quantized by llama-quantize; two rows of 256 make one), six activation
rows quantized to the type's vec_dot_type by ggml (quantize_row_q8_0 / quantize_row_q8_K) and ggml's
own product of every pair: its vec_dot, or for IQ4_NL and MXFP4 (whose matrices llama.cpp repacks on
x86, rows a multiple of 8) its GEMV of the eight rows repacked, all computed by llama-cpp-python's
libggml-cpu (the x86 build the model goldens come from).

    PYTHONPATH=.:/path/to/llama.cpp/gguf-py /work/venv-oracle/bin/python scripts/make_iquant_dot_goldens.py

Needs llama-cpp-python 0.3.36 (the oracle), llmcore (to read the fixtures) and the ``gguf`` package.
Writes tests/fixtures/iquant/vec_dot.npz: ``<TYPE>.rows`` (uint8 [8, row bytes]), ``<TYPE>.xq`` (uint8
[6, activation row bytes]) and ``<TYPE>.dots`` (float32 [6, 8]).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

import llama_cpp

from llmcore.gguf import GGUFReader

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "iquant"
OUT = FIXTURES / "vec_dot.npz"
N_ROWS, N_TOKENS, K = 8, 6, 512

#: type -> (ggml's vec_dot name, its activation quantizer, activation bytes per 512 values)
Q8_0, Q8_K = ("quantize_row_q8_0", 34 * K // 32), ("quantize_row_q8_K", 292 * K // 256)
KERNELS = {
    "IQ4_NL": ("iq4_nl_q8_0", *Q8_0), "IQ4_XS": ("iq4_xs_q8_K", *Q8_K), "IQ3_S": ("iq3_s_q8_K", *Q8_K),
    "IQ3_XXS": ("iq3_xxs_q8_K", *Q8_K), "IQ2_XXS": ("iq2_xxs_q8_K", *Q8_K), "IQ2_XS": ("iq2_xs_q8_K", *Q8_K),
    "IQ2_S": ("iq2_s_q8_K", *Q8_K), "IQ1_S": ("iq1_s_q8_K", *Q8_K), "IQ1_M": ("iq1_m_q8_K", *Q8_K),
    "TQ1_0": ("tq1_0_q8_K", *Q8_K), "TQ2_0": ("tq2_0_q8_K", *Q8_K), "MXFP4": ("mxfp4_q8_0", *Q8_0),
    "NVFP4": ("nvfp4_q8_0", *Q8_0), "Q1_0": ("q1_0_q8_0", *Q8_0), "Q2_0": ("q2_0_q8_0", *Q8_0),
}
#: types multiplied by the repacked GEMV: its name, and the bytes of a block's scale (f16 d, E8M0 e)
REPACKED = {"IQ4_NL": ("ggml_gemv_iq4_nl_8x8_q8_0", 2), "MXFP4": ("ggml_gemv_mxfp4_8x8_q8_0", 1)}
GEMV = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_int, ctypes.c_int)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def ggml_cpu() -> ctypes.CDLL:
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    ctypes.CDLL(str(lib_dir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(lib_dir / "libggml-cpu.so"))
    lib.ggml_cpu_init()  # fills the f16 tables the kernels read
    return lib


def weight_rows(type_name: str) -> np.ndarray:
    """Rows of 512 values of ``type_name``: the bytes of the first matrix of that type in the fixtures."""
    for path in sorted(FIXTURES.glob("*.gguf")):
        with GGUFReader(path) as reader:
            for name, info in reader.tensors.items():
                if info.type.name == type_name and info.shape[0] % 256 == 0:
                    raw = reader.raw(name).reshape(-1)
                    return np.ascontiguousarray(raw.reshape(-1, len(raw) * K // (info.shape[0] * info.shape[1]))[:N_ROWS])
    raise SystemExit(f"no {type_name} matrix in {FIXTURES}")


def repack_x8(rows: np.ndarray, scale_bytes: int) -> np.ndarray:
    """ggml's 8-row interleave (make_block_iq4_nlx8 / make_block_mxfp4x8 with 8-byte interleave): per
    32-value block, the 8 rows' scales, then their quant bytes in 8-byte pieces taken row after row."""
    blocks = rows.reshape(8, -1, scale_bytes + 16)  # [row, block, bytes]
    scales = blocks[:, :, :scale_bytes].transpose(1, 0, 2).reshape(blocks.shape[1], -1)
    pieces = blocks[:, :, scale_bytes:].reshape(8, -1, 2, 8).transpose(1, 2, 0, 3).reshape(blocks.shape[1], -1)
    return np.ascontiguousarray(np.concatenate([scales, pieces], axis=1))


def main() -> int:
    lib = ggml_cpu()
    rng = np.random.default_rng(1717)
    out = {}
    for type_name, (kernel, quantizer, act_bytes) in KERNELS.items():
        rows = weight_rows(type_name)
        x = (rng.standard_normal((N_TOKENS, K)) * rng.uniform(0.05, 8, (N_TOKENS, 1))).astype(np.float32)
        xq = np.zeros((N_TOKENS, act_bytes), np.uint8)
        for t in range(N_TOKENS):
            getattr(lib, quantizer)(x[t].ctypes.data_as(ctypes.c_void_p), xq[t].ctypes.data_as(ctypes.c_void_p),
                                    ctypes.c_int64(K))
        dots = np.zeros((N_TOKENS, N_ROWS), np.float32)
        if type_name in REPACKED:
            gemv_name, scale_bytes = REPACKED[type_name]
            gemv, packed = GEMV((gemv_name, lib)), repack_x8(rows, scale_bytes)
            for t in range(N_TOKENS):
                gemv(K, dots[t].ctypes.data_as(ctypes.POINTER(ctypes.c_float)), N_ROWS, packed.ctypes.data,
                     xq[t].ctypes.data, 1, N_ROWS)
        else:
            dot = VEC_DOT(("ggml_vec_dot_" + kernel, lib))
            for t in range(N_TOKENS):
                for r in range(N_ROWS):
                    result = ctypes.c_float()
                    dot(K, ctypes.byref(result), 0, rows[r].ctypes.data, 0, xq[t].ctypes.data, 0, 1)
                    dots[t, r] = result.value
        out |= {f"{type_name}.rows": rows, f"{type_name}.xq": xq, f"{type_name}.dots": dots}
    np.savez_compressed(OUT, **out)
    print(f"{OUT}: {len(KERNELS)} types, {OUT.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
