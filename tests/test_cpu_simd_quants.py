"""cpu_simd plugin: K-quant (Q2_K..Q6_K x Q8_K) and legacy (Q4_0, Q5_0, Q5_1, BF16) kernels.

The two kernel sources are compiled standalone here, once per ISA level (scalar, avx2, avx512),
into small cffi ABI-mode libraries, so these tests do not depend on the plugin's own build.
Oracles:
  * gguf.quants.dequantize (bit-exact dequant_row), gguf.quants.quantize for the legacy types;
  * ggml itself: tests/fixtures/cpu_simd_quants/ggml_goldens.npz (made by make_goldens.py with
    llama-cpp-python's libggml): ggml-quantized weights, ggml dequant, ggml q8_K/q8_0/q8_1/bf16
    activation quantization and ggml vec_dot results;
  * a numpy evaluation of ggml's dot formula, with the block integers read through gguf's
    dequantizer (scale fields patched to 1/0) so no bit unpacking is shared with the C code.
Against the numpy formula, dot products are compared with |ours - ref| <= 1e-5 * sum(|terms|)
(the sum of magnitudes keeps the bound meaningful when the dot cancels to nearly zero). Against
ggml's own vec_dot, the types in EXACT_TYPES must match bit for bit on every ISA level: their
kernels add up in the exact float order of ggml's x86 AVX2 kernels (which the scalar paths spell
out lane by lane); the others only within that tolerance. Q4_K instead adds up as ggml's x86
repacked kernel (repack.cpp gemv_q4_K_8x8_q8_K), which llama.cpp runs for every Q4_K matrix on
AVX2 CPUs: it must match that kernel's float order (ref_dot_q4_K_repacked) bit for bit; so must
Q4_0's repacked kernel (ref_dot_q4_0_repacked), which llama.cpp runs for Q4_0 matrices of rows a
multiple of 8.
"""
from __future__ import annotations

import itertools
import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import quants

cffi = pytest.importorskip("cffi")

REPO = Path(__file__).resolve().parents[1]
CSRC = REPO / "plugins" / "cpu_simd" / "llmcore_cpu_simd" / "csrc"
SOURCES = ["quants_kq.c", "quants_legacy.c", "quants_iq.c", "quants.c", "traits.c", "mm_packed.c", "gemv_kq.c",
           "gemm_f16.c"]
GOLDENS = Path(__file__).parent / "fixtures" / "cpu_simd_quants" / "ggml_goldens.npz"
NEON_SCRIPT = REPO / "scripts" / "cross_check_neon.sh"
REL_TOL = 1e-5

# the plugin's ISA levels (as llmcore_cpu_simd.isa builds them): compiler flags and the
# /proc/cpuinfo flags needed to run them; "avx2" as on AMD before Zen 3, without BMI2 (isa drops its
# slow pdep there), so the kernels' shift-and-mask paths run too
ISA_LEVELS = {
    "scalar": ([], []),
    "avx2": (["-mavx2", "-mfma", "-mf16c"], ["avx2", "fma", "f16c"]),
    "avx2_vnni": (["-mavx2", "-mfma", "-mf16c", "-mavxvnni", "-mbmi2"], ["avx2", "fma", "f16c", "avx_vnni", "bmi2"]),
    "avx512": (["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx512bf16", "-mbmi2"],
               ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16", "bmi2"]),
}

CDEF = """
void lc_quantize_row_q8_K(const float *x, void *y, int64_t n);
void lc_vec_dot_q2_K(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q3_K(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q4_K(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q5_K(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q6_K(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q6_K_tiled(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q4_K_gemm(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q2_K_gemm(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q2_K_repacked(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q2_K_tiled(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q3_K_tiled(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q4_K_tiled(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q5_K_tiled(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q8_0(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q4_1(int n, float *s, const void *w, const void *x);
size_t lc_packed_bytes(int type, int64_t k);
void lc_gemv_q4_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q5_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q2_K_repacked(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q4_1(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q8_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q5_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q5_1(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q4_0_repacked(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_pack_rows(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed);
void lc_packed_mul(int type, int order, const void *packed, int nrows, int64_t k, const void *x, size_t x_bytes,
                   int64_t n_tokens, float *y, size_t ldy);
void lc_tile_q5_0(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_tile_q4_1(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_tile_q8_0(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_tile_f16_tinyblas(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_gemm_f16(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                 float *y, size_t ldy, const float *bias);
void lc_vec_dot_q4_0(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q4_0_repacked(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q5_0(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q5_1(int n, float *s, const void *w, const void *x);
void lc_vec_dot_bf16(int n, float *s, const void *w, const void *x);
void lc_tile_bf16_tinyblas(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_gemm_bf16_tinyblas(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                           float *y, size_t ldy);
void lc_dequant_row_q2_K(const void *w, float *y, int64_t n);
void lc_dequant_row_q3_K(const void *w, float *y, int64_t n);
void lc_dequant_row_q4_K(const void *w, float *y, int64_t n);
void lc_dequant_row_q5_K(const void *w, float *y, int64_t n);
void lc_dequant_row_q6_K(const void *w, float *y, int64_t n);
void lc_dequant_row_q4_0(const void *w, float *y, int64_t n);
void lc_dequant_row_q5_0(const void *w, float *y, int64_t n);
void lc_dequant_row_q5_1(const void *w, float *y, int64_t n);
void lc_dequant_row_bf16(const void *w, float *y, int64_t n);
"""

# weight type -> (gguf type, activation format, byte offsets of the fp16 fields (d first, then
# dmin / m when present) inside one block)
WEIGHT_TYPES = {
    "q2_K": (T.Q2_K, "q8_K", (80, 82)),
    "q3_K": (T.Q3_K, "q8_K", (108,)),
    "q4_K": (T.Q4_K, "q8_K", (0, 2)),
    "q5_K": (T.Q5_K, "q8_K", (0, 2)),
    "q6_K": (T.Q6_K, "q8_K", (208,)),
    "q4_0": (T.Q4_0, "q8_0", (0,)),
    "q5_0": (T.Q5_0, "q8_0", (0,)),
    "q5_1": (T.Q5_1, "q8_1", (0, 2)),
    "bf16": (T.BF16, "bf16", ()),
}
# the default model's types (quants.c), tested against the reference backend in test_cpu_simd_ops;
# here only as inputs of the packed GEMM
PACKED_ONLY_TYPES = {"q4_1": (T.Q4_1, "q8_1", (0, 2)), "q8_0": (T.Q8_0, "q8_0", (0,))}
ALL_TYPES = WEIGHT_TYPES | PACKED_ONLY_TYPES
K_TYPES = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]
EXACT_TYPES = {"q4_0", "q5_0", "q5_K", "q6_K", "q2_K", "q3_K"}
LEGACY_TYPES = ["q4_0", "q5_0", "q5_1"]
ROW_LENGTHS = {"q8_K": [256, 512, 2816], "q8_0": [32, 96, 2816], "q8_1": [32, 96, 2816], "bf16": [1, 31, 33, 2829]}

ACT_DTYPES = {
    "q8_K": np.dtype([("d", "<f4"), ("qs", "i1", 256), ("bsums", "<i2", 16)]),
    "q8_0": np.dtype([("d", "<f2"), ("qs", "i1", 32)]),
    "q8_1": np.dtype([("d", "<f2"), ("s", "<f2"), ("qs", "i1", 32)]),
}
F16_ONE = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
F16_ZERO = np.zeros(2, np.uint8)

_FFI = cffi.FFI()
_FFI.cdef(CDEF)


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def _compile_levels(levels, out_dir: Path, name: str = "lc_quants", sources=SOURCES, includes=()) -> dict[str, Path]:
    """level -> the kernels built for it, the compilers run side by side (a 2-core CI runner
    builds two levels in the time of one)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    compiles = {}
    for level in levels:
        so = out_dir / f"{name}_{level}.so"
        cmd = [cc, "-O3", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Werror", *ISA_LEVELS[level][0],
               f"-I{CSRC}", *(f"-I{d}" for d in includes), *(str(CSRC / s) for s in sources), "-o", str(so), "-lm"]
        compiles[level] = (so, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for so, process in compiles.values():
        stdout, stderr = process.communicate()
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, process.args, stdout, stderr)
    return {level: so for level, (so, _) in compiles.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, bool]]:
    """level -> (compiled library, runnable on this CPU); x86 levels are only built on x86."""
    out = tmp_path_factory.mktemp("lc_quants")
    flags = _cpu_flags()
    levels = ISA_LEVELS if _is_x86() else {"scalar": ISA_LEVELS["scalar"]}
    return {lvl: (so, set(levels[lvl][1]) <= flags) for lvl, so in _compile_levels(levels, out).items()}


@pytest.fixture(scope="module")
def libs(built) -> dict:
    """level -> loaded library, for the levels this CPU can run"""
    return {lvl: _FFI.dlopen(str(so)) for lvl, (so, runnable) in built.items() if runnable}


# ---------------------------------------------------------------------------------------------
# data generation and the numpy reference


def random_weight_row(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """One row of valid weight blocks as bytes. The legacy types are quantized from random floats
    by gguf; gguf cannot quantize K-quants, so their blocks are random bytes (any bit pattern is a
    valid K-quant block) with finite, realistically sized fp16 super-block scales."""
    qtype, _, f16_offsets = ALL_TYPES[name]
    if qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16):
        return quants.quantize((rng.standard_normal(n) * 0.05).astype(np.float32), qtype)
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n // block_size, type_size), dtype=np.uint8)
    for off in f16_offsets:
        scale = (rng.uniform(1e-4, 2e-3, size=len(blocks)) * rng.choice([-1, 1], size=len(blocks)))
        blocks[:, off:off + 2] = scale.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return blocks.reshape(-1)


def random_activations(n: int, rng: np.random.Generator) -> np.ndarray:
    x = (rng.standard_normal(n) * rng.uniform(0.1, 10.0)).astype(np.float32)
    if n >= 512:
        x[256:512] = 0.0  # one all-zero super-block
    return x


def ref_quantize_q8_K(x: np.ndarray) -> np.ndarray:
    """ggml quantize_row_q8_K_ref in float32 numpy (rint == ggml's nearest_int for |v| <= 2**22)."""
    blocks = x.reshape(-1, 256)
    out = np.zeros(len(blocks), ACT_DTYPES["q8_K"])
    for i, b in enumerate(blocks):
        amax_i = int(np.argmax(np.abs(b)))
        if b[amax_i] == 0:
            continue
        iscale = np.float32(-127.0) / b[amax_i]
        q = np.minimum(np.rint(iscale * b), 127).astype(np.int8)
        out[i]["qs"] = q
        out[i]["bsums"] = q.reshape(16, 16).astype(np.int32).sum(axis=1)
        out[i]["d"] = np.float32(1.0) / iscale
    return out.view(np.uint8)


def quantize_activations(fmt: str, x: np.ndarray, lib) -> np.ndarray:
    """Activation row in the kernel's format: q8_K by the kernel under test (itself checked against
    ggml below), q8_0 / bf16 by gguf, q8_1 from gguf's q8_0 plus s = fp16(d * sum(qs))."""
    if fmt == "q8_K":
        y = np.zeros(len(x) // 256 * ACT_DTYPES["q8_K"].itemsize, np.uint8)
        lib.lc_quantize_row_q8_K(_ptr(x), _ptr(y), len(x))
        return y
    if fmt == "bf16":
        return quants.quantize(x, T.BF16)
    q8_0 = quants.quantize(x, T.Q8_0).view(ACT_DTYPES["q8_0"])
    if fmt == "q8_0":
        return q8_0.view(np.uint8)
    q8_1 = np.zeros(len(q8_0), ACT_DTYPES["q8_1"])
    q8_1["d"], q8_1["qs"] = q8_0["d"], q8_0["qs"]
    q8_1["s"] = (q8_0["d"].astype(np.float32) * q8_0["qs"].astype(np.int32).sum(axis=1)).astype(np.float16)
    return q8_1.view(np.uint8)


def _patched_dequant(name: str, w: np.ndarray, fields: tuple[np.ndarray, ...]) -> np.ndarray:
    """gguf dequantization of w with its fp16 scale fields replaced (d, then dmin / m)."""
    qtype, _, offsets = WEIGHT_TYPES[name]
    blocks = w.reshape(-1, quants.GGML_QUANT_SIZES[qtype][1]).copy()
    for off, val in zip(offsets, fields):
        blocks[:, off:off + 2] = val
    return quants.dequantize(blocks.reshape(-1), qtype).astype(np.float64)


def ref_dot(name: str, w: np.ndarray, xq: np.ndarray) -> tuple[float, float]:
    """ggml's vec_dot formula in float64 -> (value, sum of |terms|)."""
    qtype, fmt, offsets = WEIGHT_TYPES[name]
    if fmt == "bf16":
        t = quants.dequantize(w, T.BF16).astype(np.float64) * quants.dequantize(xq, T.BF16).astype(np.float64)
        return float(t.sum()), float(np.abs(t).sum())
    act = xq.view(ACT_DTYPES[fmt])
    bs = act["qs"].shape[1]
    q8 = act["qs"].astype(np.float64).reshape(-1, bs)
    blocks = w.reshape(len(act), -1)
    d_w = blocks[:, offsets[0]:offsets[0] + 2].copy().view(np.float16).astype(np.float32).ravel()
    d_x = act["d"].astype(np.float32)
    # integer part scale*q (the scale fields set to d=1, dmin/m=0) and, for types with a min, the
    # per-element min (d=0, dmin=1, negated); both are exact small integers
    scaled_q = _patched_dequant(name, w, (F16_ONE, F16_ZERO)).reshape(-1, bs) * q8
    terms = [(d_w * d_x).astype(np.float32).astype(np.float64)[:, None] * scaled_q]
    if len(offsets) == 2:
        second = blocks[:, offsets[1]:offsets[1] + 2].copy().view(np.float16).astype(np.float32).ravel()
        if fmt == "q8_K":  # - dmin * sum(min * bsum)
            mins = -_patched_dequant(name, w, (F16_ZERO, F16_ONE)).reshape(-1, bs) * q8
            terms.append(-(second * d_x).astype(np.float32).astype(np.float64)[:, None] * mins)
        else:              # q5_1: + m * s
            terms.append((second.astype(np.float64) * act["s"].astype(np.float64))[:, None])
    value = sum(t.sum() for t in terms)
    return float(value), float(sum(np.abs(t).sum() for t in terms))


def _fma32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """float32 fma: a*b is exact in float64; one rounding of the sum (fixed test data, so the rare
    float64 -> float32 double rounding cannot make the test flaky)."""
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


def ref_dot_repacked_k(name: str, group: int, w: np.ndarray, xq: np.ndarray) -> np.float32:
    """ggml's x86 repacked kernels of a K-quant with mins (Q4_K, Q2_K) for one row: per ``group``
    values (the GEMV: a whole super-block; the GEMM: 64 values for Q4_K, 128 for Q2_K) the integer
    scale sum and the integer min sum, each fma'd into its own float32 accumulator with d_w*d_x
    (dmin_w*d_x), the min accumulator subtracted at the end."""
    _, _, (d_at, dmin_at) = WEIGHT_TYPES[name]
    act = xq.view(ACT_DTYPES["q8_K"])
    q8 = act["qs"].astype(np.float64).reshape(len(act), -1, group)
    blocks = w.reshape(len(act), -1)
    d_w, dmin_w = (blocks[:, o:o + 2].copy().view(np.float16).astype(np.float32).ravel() for o in (d_at, dmin_at))
    isum = (_patched_dequant(name, w, (F16_ONE, F16_ZERO)).reshape(q8.shape) * q8).sum(axis=2)
    imin = -(_patched_dequant(name, w, (F16_ZERO, F16_ONE)).reshape(q8.shape) * q8).sum(axis=2)
    acc = acc_min = np.float32(0)
    for b in range(len(act)):
        for g in range(q8.shape[1]):
            acc = _fma32(np.float32(isum[b, g]), d_w[b] * act["d"][b], acc)
            acc_min = _fma32(np.float32(imin[b, g]), dmin_w[b] * act["d"][b], acc_min)
    return np.float32(acc - acc_min)


def ref_dot_q4_K_repacked(w: np.ndarray, xq: np.ndarray) -> np.float32:
    return ref_dot_repacked_k("q4_K", 256, w, xq)


def _ptr(a: np.ndarray):
    return _FFI.cast("void *", a.ctypes.data)


def extreme_weight_row(name: str, n: int) -> np.ndarray:
    """One row whose quant bits are all ones (Q4_K 15, Q5_K 31, Q6_K 63 less 32 and scales of 63 or
    -1: the largest products a packed kernel sums in int16), its fp16 scales 1."""
    qtype, _, f16_offsets = ALL_TYPES[name]
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    blocks = np.full((n // block_size, type_size), 0xFF, np.uint8)
    for off in f16_offsets:
        blocks[:, off:off + 2] = F16_ONE
    return blocks.reshape(-1)


def run_dot(lib, name: str, n: int, w: np.ndarray, xq: np.ndarray) -> float:
    s = np.zeros(1, np.float32)
    getattr(lib, f"lc_vec_dot_{name}")(n, _FFI.cast("float *", s.ctypes.data), _ptr(w), _ptr(xq))
    return float(s[0])


def run_dequant(lib, name: str, n: int, w: np.ndarray) -> np.ndarray:
    y = np.full(n, np.nan, np.float32)
    getattr(lib, f"lc_dequant_row_{name}")(_ptr(w), _FFI.cast("float *", y.ctypes.data), n)
    return y


# ---------------------------------------------------------------------------------------------
# tests


def test_isa_levels_build(built, record_property, capsys):
    """Every ISA level compiles warning-free; reports which ones also run here."""
    status = {lvl: ("compiled and run" if runnable else "compiled only: CPU lacks it")
              for lvl, (_, runnable) in built.items()}
    if not _is_x86():
        status.update({lvl: "not built: not an x86 CPU" for lvl in ISA_LEVELS if lvl != "scalar"})
    for lvl, msg in status.items():
        record_property(f"isa_{lvl}", msg)
    with capsys.disabled():
        print("\ncpu_simd quant kernels ISA levels: " + ", ".join(f"{k}: {v}" for k, v in status.items()))
    assert built["scalar"][1]


@pytest.mark.parametrize("name", list(WEIGHT_TYPES))
def test_dequant_row_matches_gguf_bit_exactly(libs, name):
    rng = np.random.default_rng(1)
    qtype, fmt, _ = WEIGHT_TYPES[name]
    for n in ROW_LENGTHS[fmt]:
        w = random_weight_row(name, n, rng)
        expected = quants.dequantize(w, qtype).astype(np.float32).ravel()
        for lvl, lib in libs.items():
            got = run_dequant(lib, name, n, w)
            np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32), err_msg=f"{name} n={n} {lvl}")


@pytest.mark.parametrize("name", list(WEIGHT_TYPES))
def test_vec_dot_matches_ggml_formula_on_every_isa_level(libs, name):
    rng = np.random.default_rng(2)
    _, fmt, _ = WEIGHT_TYPES[name]
    for n in ROW_LENGTHS[fmt]:
        for _ in range(3):
            w = random_weight_row(name, n, rng)
            xq = quantize_activations(fmt, random_activations(n, rng), libs["scalar"])
            ref, scale = ref_dot(name, w, xq)
            results = {lvl: run_dot(lib, name, n, w, xq) for lvl, lib in libs.items()}
            for lvl, got in results.items():
                assert abs(got - ref) <= REL_TOL * scale, f"{name} n={n} {lvl}: {got} vs ggml formula {ref}"
                assert abs(got - results["scalar"]) <= REL_TOL * scale, f"{name} n={n} {lvl} vs scalar"


def ref_dot_tiled(name: str, w: np.ndarray, xq: np.ndarray) -> np.float32:
    """llama.cpp's tiled K-quant kernel (batches of 8+ tokens) for one row: per super-block the exact
    integer sum times d_w (for the types with mins, less dmin_w times the mins' integer sum, fused),
    then fma'd with d_x into the running sum."""
    _, _, offsets = WEIGHT_TYPES[name]
    act = xq.view(ACT_DTYPES["q8_K"])
    q8 = act["qs"].astype(np.float64)
    blocks = w.reshape(len(act), -1)
    d_w, *dmin_w = (blocks[:, o:o + 2].copy().view(np.float16).astype(np.float32).ravel() for o in offsets)
    isum = (_patched_dequant(name, w, (F16_ONE, F16_ZERO)).reshape(-1, 256) * q8).sum(axis=1)
    imin = -(_patched_dequant(name, w, (F16_ZERO, F16_ONE)).reshape(-1, 256) * q8).sum(axis=1) if dmin_w else None
    acc = np.float32(0)
    for b in range(len(act)):
        result = np.float32(isum[b]) * d_w[b]
        if dmin_w:
            result = _fma32(-dmin_w[0][b], np.float32(imin[b]), result)
        acc = _fma32(result, act["d"][b], acc)
    return acc


def ref_dot_q4_0_repacked(w: np.ndarray, xq: np.ndarray) -> np.float32:
    """ggml's x86 repacked Q4_0 GEMV and GEMM (q4_0_8x8) for one row: per 32-block the exact integer
    dot, fma'd with d_w*d_x (a float32 product) into one float32 running sum."""
    act = xq.view(ACT_DTYPES["q8_0"])
    d_w = w.reshape(len(act), -1)[:, :2].copy().view(np.float16).astype(np.float32).ravel()
    isum = (_patched_dequant("q4_0", w, (F16_ONE,)).reshape(-1, 32) * act["qs"].astype(np.float64)).sum(axis=1)
    acc = np.float32(0)
    for b in range(len(act)):
        acc = _fma32(np.float32(isum[b]), d_w[b] * act["d"][b].astype(np.float32), acc)
    return acc


def test_repacked_q4_0_order_matches_llama_cpp_formula(libs):
    """Q4_0's repacked order holds bit for bit on every ISA level, for short and long rows; the
    model-level check against llama.cpp itself is tests/test_kquant_goldens.py's q4_0 fixtures."""
    rng = np.random.default_rng(23)
    for n in (32, 576, 2816):
        for _ in range(3):
            w = random_weight_row("q4_0", n, rng)
            xq = quantize_activations("q8_0", random_activations(n, rng), libs["scalar"])
            expected = ref_dot_q4_0_repacked(w, xq)
            for lvl, lib in libs.items():
                assert np.float32(run_dot(lib, "q4_0_repacked", n, w, xq)) == expected, f"n={n} {lvl}"


@pytest.mark.parametrize(("name", "kernel", "formula"), [
    ("q6_K", "q6_K_tiled", lambda w, xq: ref_dot_tiled("q6_K", w, xq)),
    ("q3_K", "q3_K_tiled", lambda w, xq: ref_dot_tiled("q3_K", w, xq)),
    ("q2_K", "q2_K_tiled", lambda w, xq: ref_dot_tiled("q2_K", w, xq)),
    ("q4_K", "q4_K_gemm", lambda w, xq: ref_dot_repacked_k("q4_K", 64, w, xq)),
    ("q2_K", "q2_K_gemm", lambda w, xq: ref_dot_repacked_k("q2_K", 128, w, xq)),
    ("q2_K", "q2_K_repacked", lambda w, xq: ref_dot_repacked_k("q2_K", 256, w, xq))])
def test_batched_k_quant_orders_match_llama_cpp_formulas(libs, name, kernel, formula):
    """The orders llama.cpp uses for a batch of tokens (its tiled kernel, its repacked GEMM) and for
    the repacked Q2_K's GEMV hold bit for bit on every ISA level; the model-level checks against
    llama.cpp itself are tests/test_kquant_goldens.py's."""
    rng = np.random.default_rng(5)
    for n in (256, 1536):
        w = random_weight_row(name, n, rng)
        xq = quantize_activations("q8_K", random_activations(n, rng), libs["scalar"])
        expected = formula(w, xq)
        for lvl, lib in libs.items():
            assert np.float32(run_dot(lib, kernel, n, w, xq)) == expected, f"{kernel} n={n} {lvl}"


ORDER_VEC_DOT, ORDER_KQ_TILED, ORDER_KQ_GEMM, ORDER_BLOCK_SUMS = 1, 2, 3, 4  # lc_mm_packed.h


@pytest.mark.parametrize(("name", "order", "kernel"), [
    ("q4_0", ORDER_VEC_DOT, "q4_0"), ("q4_0", ORDER_BLOCK_SUMS, "q4_0_repacked"),
    ("q4_1", ORDER_VEC_DOT, "q4_1"), ("q5_0", ORDER_VEC_DOT, "q5_0"),
    ("q5_1", ORDER_VEC_DOT, "q5_1"), ("q8_0", ORDER_VEC_DOT, "q8_0"),
    ("q2_K", ORDER_KQ_TILED, "q2_K_tiled"), ("q2_K", ORDER_KQ_GEMM, "q2_K_gemm"), ("q3_K", ORDER_KQ_TILED, "q3_K_tiled"),
    ("q4_K", ORDER_KQ_TILED, "q4_K_tiled"), ("q5_K", ORDER_KQ_TILED, "q5_K_tiled"),
    ("q6_K", ORDER_KQ_TILED, "q6_K_tiled"), ("q4_K", ORDER_KQ_GEMM, "q4_K_gemm"),
    ("q4_K", ORDER_VEC_DOT, "q4_K")])
def test_packed_gemm_equals_one_row_kernels(libs, name, order, kernel):
    """The prompt path's packed GEMM (a block of rows unpacked once, then every token) gives each
    output exactly as the one-row function of the same order, for partial row blocks, token counts
    around its token groups, and short and long rows; the first row of each block holds the type's
    largest quants and the first token equal activations (all +-127), the sums an int16 step would
    overflow first."""
    simd = {lvl: lib for lvl, lib in libs.items() if lvl != "scalar"}
    if not simd:
        pytest.skip("no AVX2 build runs on this CPU")
    rng = np.random.default_rng(11)
    qtype, act, _ = ALL_TYPES[name]
    lengths = (256, 1536) if act == "q8_K" else (32, 576)
    # every SIMD build packs these types (Q8_0 as signed bytes where it has no dpbusd)
    for lvl, lib in simd.items():
        # a packed block holds 360 bytes per row and super-block (K-quants), 40 per row and 32-block
        per_row_and_block = 360 if act == "q8_K" else 40
        blocks = lengths[0] // (256 if act == "q8_K" else 32)
        block_rows = lib.lc_packed_bytes(int(qtype), lengths[0]) // (blocks * per_row_and_block)
        assert block_rows in (8, 16), f"{lvl}: unexpected packed layout"
        for k in lengths:
            packed = np.zeros(lib.lc_packed_bytes(int(qtype), k) + 64, np.uint8)
            packed_ptr = _FFI.cast("void *", packed.ctypes.data + (-packed.ctypes.data % 64))
            for nrows in sorted({1, 5, block_rows - 1, block_rows}):
                w = np.concatenate([extreme_weight_row(name, k)] +
                                   [random_weight_row(name, k, rng) for _ in range(nrows - 1)])
                row_bytes = len(w) // nrows
                for n_tokens in (1, 2, 3, 4, 9):
                    xs = np.concatenate([quantize_activations(act, np.ones(k, np.float32) if t == 0 else
                                                              random_activations(k, rng), libs["scalar"])
                                         for t in range(n_tokens)])
                    x_bytes = len(xs) // n_tokens
                    expected = np.array([[run_dot(lib, kernel, k, w[r * row_bytes:(r + 1) * row_bytes],
                                                  xs[t * x_bytes:(t + 1) * x_bytes]) for r in range(nrows)]
                                         for t in range(n_tokens)], np.float32)
                    ldy = nrows + 3
                    y = np.full((n_tokens, ldy), np.nan, np.float32)
                    lib.lc_pack_rows(int(qtype), _ptr(w), row_bytes, nrows, k, packed_ptr)
                    lib.lc_packed_mul(int(qtype), order, packed_ptr, nrows, k, _ptr(xs), x_bytes, n_tokens,
                                      _FFI.cast("float *", y.ctypes.data), ldy)
                    np.testing.assert_array_equal(y[:, :nrows].view(np.uint32), expected.view(np.uint32),
                                                  err_msg=f"{lvl} k={k} rows={nrows} tokens={n_tokens}")
                    assert np.isnan(y[:, nrows:]).all(), f"{lvl}: wrote past the block's rows"


def test_q4_K_gemv_equals_vec_dot_bit_for_bit(libs):
    """The routed experts' one-token product (four rows at a time on AVX2 and AVX-512, the rest one
    by one) gives each row exactly lc_vec_dot_q4_K's output, on every ISA level."""
    rng = np.random.default_rng(13)
    for k in (256, 1536):
        nrows = 11
        w = np.concatenate([random_weight_row("q4_K", k, rng) for _ in range(nrows)])
        row_bytes = len(w) // nrows
        xq = quantize_activations("q8_K", random_activations(k, rng), libs["scalar"])
        for lvl, lib in libs.items():
            expected = np.array([run_dot(lib, "q4_K", k, w[r * row_bytes:(r + 1) * row_bytes], xq)
                                 for r in range(nrows)], np.float32)
            for prefetch in (1, 0):
                y = np.full(nrows, np.nan, np.float32)
                lib.lc_gemv_q4_K(k, _ptr(w), row_bytes, nrows, _ptr(xq), _FFI.cast("float *", y.ctypes.data), prefetch)
                np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32),
                                              err_msg=f"{lvl} k={k} prefetch={prefetch}")


@pytest.mark.parametrize(("name", "kernel"), [("q5_K", "q5_K"), ("q2_K", "q2_K_repacked")])
def test_k_quant_gemvs_equal_vec_dot_bit_for_bit(libs, name, kernel):
    """Decode's one-token Q5_K and (repacked) Q2_K products (four rows at a time on AVX2 and AVX-512,
    the last few one by one) give each row exactly the one-row kernel's output, on every ISA level,
    for row counts that are and are not multiples of four."""
    rng = np.random.default_rng(19)
    for k in (256, 1536, 2816):
        nrows = 13
        w = np.concatenate([random_weight_row(name, k, rng) for _ in range(nrows)])
        row_bytes = len(w) // nrows
        xq = quantize_activations("q8_K", random_activations(k, rng), libs["scalar"])
        for lvl, lib in libs.items():
            expected = np.array([run_dot(lib, kernel, k, w[r * row_bytes:(r + 1) * row_bytes], xq)
                                 for r in range(nrows)], np.float32)
            for rows, prefetch in itertools.product((1, 4, 5, 8, 13), (1, 0)):
                y = np.full(nrows, np.nan, np.float32)
                getattr(lib, f"lc_gemv_{kernel}")(k, _ptr(w), row_bytes, rows, _ptr(xq),
                                                  _FFI.cast("float *", y.ctypes.data), prefetch)
                np.testing.assert_array_equal(y[:rows].view(np.uint32), expected[:rows].view(np.uint32),
                                              err_msg=f"{lvl} k={k} rows={rows}")
                assert np.isnan(y[rows:]).all(), f"{lvl}: wrote past the rows"


@pytest.mark.parametrize(("name", "kernel"), [("q4_1", "q4_1"), ("q8_0", "q8_0"), ("q5_0", "q5_0"), ("q5_1", "q5_1"),
                                            ("q4_0", "q4_0_repacked")])
def test_legacy_gemvs_equal_vec_dot_bit_for_bit(libs, name, kernel):
    """Decode's one-token product of the legacy types (four rows at a time: Q4_1 and Q8_0 on AVX2,
    Q5_0, Q5_1 and Q4_0 (in the repacked order) on AVX2 and AVX-512, which alone build theirs; the last few
    one by one) gives each row exactly the one-row kernel's output, on every ISA level, for row counts
    that are and are not multiples of four."""
    rng = np.random.default_rng(17)
    act = ALL_TYPES[name][1]
    for k in (32, 576, 608, 1536):  # 608: an odd count of blocks past the first pair (Q4_0's GEMV takes two at a time)
        nrows = 13
        w = np.concatenate([random_weight_row(name, k, rng) for _ in range(nrows)])
        row_bytes = len(w) // nrows
        xq = quantize_activations(act, random_activations(k, rng), libs["scalar"])
        for lvl, lib in libs.items():
            if name in ("q5_0", "q5_1", "q4_0") and lvl == "scalar":
                continue
            expected = np.array([run_dot(lib, kernel, k, w[r * row_bytes:(r + 1) * row_bytes], xq)
                                 for r in range(nrows)], np.float32)
            for rows, prefetch in itertools.product((1, 3, 4, 5, 8, 11, 13), (1, 0)):
                y = np.full(nrows, np.nan, np.float32)
                getattr(lib, f"lc_gemv_{kernel}")(k, _ptr(w), row_bytes, rows, _ptr(xq), _FFI.cast("float *", y.ctypes.data),
                                                prefetch)
                np.testing.assert_array_equal(y[:rows].view(np.uint32), expected[:rows].view(np.uint32),
                                              err_msg=f"{lvl} k={k} rows={rows}")
                assert np.isnan(y[rows:]).all(), f"{lvl}: wrote past the rows"


@pytest.mark.parametrize("name", ["q5_0", "q4_1", "q8_0"])
def test_legacy_tiles_equal_vec_dot_bit_for_bit(libs, name):
    """The matmul's tiles (two weight rows by up to four tokens, AVX2 and AVX-512 builds; one token
    is decode's path) give each output exactly as lc_vec_dot of the type does."""
    rng = np.random.default_rng(7)
    n = 2816
    w = np.concatenate([random_weight_row(name, n, rng) for _ in range(2)])
    row = len(w) // 2
    act = ALL_TYPES[name][1]
    xs = np.concatenate([quantize_activations(act, random_activations(n, rng), libs["scalar"]) for _ in range(4)])
    x_row = len(xs) // 4
    simd = {lvl: lib for lvl, lib in libs.items() if lvl != "scalar"}
    if not simd:
        pytest.skip("no AVX2 build runs on this CPU")
    for lvl, lib in simd.items():
        expected = np.array([[run_dot(lib, name, n, w[i * row:(i + 1) * row], xs[j * x_row:(j + 1) * x_row])
                              for i in range(2)] for j in range(4)], np.float32)
        for nw in (1, 2):
            for nx in (1, 2, 3, 4):
                y = np.zeros((4, 2), np.float32)
                getattr(lib, f"lc_tile_{name}")(n, _FFI.cast("float *", y.ctypes.data), 2, _ptr(w), row, nw, _ptr(xs),
                                                x_row, nx)
                np.testing.assert_array_equal(y[:nx, :nw].view(np.uint32), expected[:nx, :nw].view(np.uint32),
                                              err_msg=f"{lvl} nw={nw} nx={nx}")


def ref_dot_f16_tinyblas(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """llamafile's tinyBLAS f16 GEMM (ggml's f16 weight times two or more f16 rows, AVX-512) for each
    output of rows w and x broadcast together (the last axis the row): 16 float32 lanes, one fma per
    value, then _mm512_reduce_add_ps's order."""
    w, x = np.broadcast_arrays(w.astype(np.float32), x.astype(np.float32))
    lanes = np.zeros(w.shape[:-1] + (16,), np.float32)
    for c in range(0, w.shape[-1], 16):
        lanes = _fma32(w[..., c:c + 16], x[..., c:c + 16], lanes)
    t3 = lanes[..., 8:] + lanes[..., :8]
    t6 = t3[..., 4:] + t3[..., :4]
    return np.float32((t6[..., 0] + t6[..., 2]) + (t6[..., 1] + t6[..., 3]))


def test_f16_tile_matches_tinyblas_formula(libs):
    """The f16 matmul's tile for two or more tokens (a verified speculative draft, a few server
    slots) adds up as tinyBLAS, which ggml runs then, bit for bit on every ISA level, for each
    number of weight and activation rows it takes."""
    rng = np.random.default_rng(13)
    for n in (576, 1536):
        w = rng.standard_normal((2, n)).astype(np.float16)
        x = rng.standard_normal((4, n)).astype(np.float16).astype(np.float32)  # f16 activations, read as floats
        expected = np.array([[ref_dot_f16_tinyblas(w[i], x[j]) for i in range(2)] for j in range(4)], np.float32)
        for lvl, lib in libs.items():
            for nw in (1, 2):
                for nx in (1, 2, 3, 4):
                    y = np.zeros((4, 2), np.float32)
                    lib.lc_tile_f16_tinyblas(n, _FFI.cast("float *", y.ctypes.data), 2, _ptr(w), 2 * n, nw, _ptr(x),
                                             4 * n, nx)
                    np.testing.assert_array_equal(y[:nx, :nw].view(np.uint32), expected[:nx, :nw].view(np.uint32),
                                                  err_msg=f"{lvl} n={n} nw={nw} nx={nx}")


def test_bf16_tile_matches_tinyblas_formula(libs):
    """The BF16 matmul's tile for two or more tokens adds up as tinyBLAS's AVX2 form (values widened to
    floats, 8 lanes of fmas, its hsum) on the AVX2 and scalar builds, for each number of weight and
    activation rows; the AVX-512 build's dpbf16 form (its instruction's own roundings) is held to
    llama.cpp's logits by tests/test_kquant_goldens.py's bf16 fixture."""
    rng = np.random.default_rng(37)
    to_bf16 = lambda a: (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    for n in (64, 576):
        w, x = to_bf16(rng.standard_normal((2, n))), to_bf16(rng.standard_normal((4, n)))
        wf, xf = ((a.astype(np.uint32) << 16).view(np.float32) for a in (w, x))
        expected = np.zeros((4, 2), np.float32)
        for j, i in itertools.product(range(4), range(2)):
            lanes = np.zeros(8, np.float32)
            for c in range(0, n, 8):
                lanes = _fma32(wf[i, c:c + 8], xf[j, c:c + 8], lanes)
            t4 = lanes[4:] + lanes[:4]
            expected[j, i] = np.float32((t4[0] + t4[2]) + (t4[1] + t4[3]))
        for lvl in ("avx2", "avx2_vnni", "scalar"):
            if lvl not in libs:
                continue
            for nw, nx in itertools.product((1, 2), (1, 2, 3, 4)):
                y = np.zeros((4, 2), np.float32)
                libs[lvl].lc_tile_bf16_tinyblas(n, _FFI.cast("float *", y.ctypes.data), 2, _ptr(w), 2 * n, nw, _ptr(x),
                                                2 * n, nx)
                np.testing.assert_array_equal(y[:nx, :nw].view(np.uint32), expected[:nx, :nw].view(np.uint32),
                                              err_msg=f"{lvl} n={n} nw={nw} nx={nx}")


def test_bf16_gemm_equals_the_tile(libs):
    """A prompt's BF16 matmul (AVX512-BF16 builds: register tiles of 4 weight rows by 4 tokens) gives
    each output exactly as the tile does (tinyBLAS's dpbf16 order, which the bf16 golden holds to
    llama.cpp's), for row and token counts that leave partial tiles."""
    if "avx512" not in libs:
        pytest.skip("this CPU cannot run the AVX-512 build (its BF16 GEMM needs AVX512-BF16)")
    lib, rng = libs["avx512"], np.random.default_rng(41)
    to_bf16 = lambda a: (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    k, nr, m = 576, 7, 11
    w, x = to_bf16(rng.standard_normal((nr, k))), to_bf16(rng.standard_normal((m, k)))
    expected = np.zeros((m, nr), np.float32)
    for r, t in itertools.product(range(nr), range(m)):
        lib.lc_tile_bf16_tinyblas(k, _FFI.cast("float *", expected[t:, r:].ctypes.data), nr, _ptr(w[r]), 2 * k, 1,
                                  _ptr(x[t]), 2 * k, 1)
    for rows, tokens in ((nr, m), (4, 4), (3, 1)):
        y = np.full((m, nr + 2), np.nan, np.float32)
        lib.lc_gemm_bf16_tinyblas(k, _ptr(w), 2 * k, rows, _ptr(x), 2 * k, tokens, _FFI.cast("float *", y.ctypes.data), nr + 2)
        np.testing.assert_array_equal(y[:tokens, :rows].view(np.uint32), expected[:tokens, :rows].view(np.uint32),
                                      err_msg=f"rows={rows} tokens={tokens}")
        assert np.isnan(y[:, rows:]).all() and np.isnan(y[tokens:]).all(), "wrote past the outputs"


def test_f16_gemm_matches_tinyblas_formula(libs):
    """The f16 matmul of many tokens (a prompt, an image's patches) is register-tiled and cache-blocked
    but adds up each output as tinyBLAS does, bit for bit on every ISA level: weight panels (AVX2: 4
    rows, AVX-512: 8) and a short last one, token tiles of 3 with 1 or 2 left, rows longer than one
    k block (AVX2: 1024 values, AVX-512: 4096), several token blocks (the last sized as the others)
    and, with 8 or more (k = 8192), the weights converted once up front, and an output stride wider
    than the rows; with a bias, each output plus its row's bias as a separate float32 ADD gives it."""
    rng = np.random.default_rng(17)
    for k, nr, m in ((64, 6, 5), (1536, 10, 40), (4096, 7, 25), (4608, 13, 100), (8192, 5, 400)):
        w = rng.standard_normal((nr, k)).astype(np.float16)
        x = (rng.standard_normal((m, k)) * 3).astype(np.float16)
        bias = rng.standard_normal(nr).astype(np.float32)
        expected = ref_dot_f16_tinyblas(w[None, :, :], x[:, None, :])
        for lvl, lib in libs.items():
            for bias_ptr, want in ((_FFI.NULL, expected), (_FFI.cast("float *", bias.ctypes.data), expected + bias)):
                y = np.full((m, nr + 3), np.nan, np.float32)
                lib.lc_gemm_f16(k, _ptr(w), 2 * k, nr, _ptr(x), 2 * k, m, _FFI.cast("float *", y.ctypes.data), nr + 3,
                                bias_ptr)
                np.testing.assert_array_equal(y[:, :nr].view(np.uint32), want.view(np.uint32), err_msg=f"{lvl} k={k}")
                assert np.isnan(y[:, nr:]).all(), f"{lvl} k={k}: wrote past its rows"


def test_quantize_q8_K_matches_ggml_reference(libs):
    rng = np.random.default_rng(3)
    x = random_activations(2816, rng)
    x[600] = -np.abs(x).max() * 1.5          # negative extreme sets the scale sign
    x[2600:2602] = [30.0, -30.0]            # a tie in magnitude: the first one wins
    for lvl, lib in libs.items():
        got = quantize_activations("q8_K", x, lib)
        np.testing.assert_array_equal(got, ref_quantize_q8_K(x), err_msg=lvl)


@pytest.fixture(scope="module")
def goldens() -> dict[str, np.ndarray]:
    with np.load(GOLDENS) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", list(WEIGHT_TYPES))
def test_against_ggml_goldens(libs, goldens, name):
    """ggml-quantized weights and ggml-quantized activations: our dequant is bit-identical to ggml's,
    our q8_K quantizer reproduces ggml's bytes, and our dot agrees with ggml's vec_dot (bit for bit
    for EXACT_TYPES)."""
    _, fmt, _ = WEIGHT_TYPES[name]
    w_rows, deq, x, xq, dots = (goldens[f"{name}/{k}"] for k in ("w", "deq", "x", "xq", "dot"))
    n = x.shape[1]
    for lvl, lib in libs.items():
        for r, w in enumerate(w_rows):
            np.testing.assert_array_equal(run_dequant(lib, name, n, w).view(np.uint32), deq[r].view(np.uint32))
        for c in range(len(x)):
            if fmt == "q8_K":
                np.testing.assert_array_equal(quantize_activations(fmt, x[c], lib), xq[c], err_msg=lvl)
            for r, w in enumerate(w_rows):
                _, scale = ref_dot(name, w, xq[c])
                got = run_dot(lib, name, n, w, xq[c])
                msg = f"{name} {lvl} row {r} act {c}: {got!r} vs ggml {float(dots[r, c])!r}"
                if name == "q4_K":
                    repacked = ref_dot_q4_K_repacked(w, xq[c])
                    assert np.float32(got).view(np.uint32) == repacked.view(np.uint32), f"{msg} (repacked kernel {repacked!r})"
                    assert abs(got - dots[r, c]) <= REL_TOL * scale, msg
                elif name in EXACT_TYPES:
                    assert np.float32(got).view(np.uint32) == dots[r, c].view(np.uint32), msg
                else:
                    assert abs(got - dots[r, c]) <= REL_TOL * scale, msg


def test_neon_matches_scalar_under_qemu():
    """aarch64 NEON paths vs the scalar paths, cross-compiled and run under qemu-aarch64-static."""
    missing = [tool for tool in ("aarch64-linux-gnu-gcc", "qemu-aarch64-static") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"NEON cross-check needs {' and '.join(missing)} "
                    "(Debian: apt-get install gcc-aarch64-linux-gnu qemu-user-static)")
    proc = subprocess.run(["bash", str(NEON_SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all NEON results match scalar" in proc.stdout
