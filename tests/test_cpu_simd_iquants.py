"""cpu_simd plugin: the IQ4_XS kernels (x Q8_K activations), compiled standalone at every ISA level
as tests/test_cpu_simd_quants.py does, bit for bit:

  * dequant_row against llmcore's dequantizer (itself bit-exact with ggml's, test_gguf_dequant_iq);
  * vec_dot against ggml's AVX2 order written out in numpy: per 256-block 8 integer lanes (lane l:
    values 4l..4l+3 of each 32-value sub-block, times its scale), one fused multiply-add of
    d_w * d_x per lane, hsum_float_8;
  * the tiled variant against llama.cpp's tiled kernel's order: the block's integer sum times d_w,
    fused-multiply-added with d_x into one running sum.

The block integers come from llmcore's dequantizer with the block scale patched to 1 (exact small
integers), so no bit unpacking is shared with the C code.

The other i-quant, ternary, FP4 and 1/2-bit types' vec_dot are held to ggml's own results on its own
quantized activations, at every ISA level (its vec_dot, or for IQ4_NL and MXFP4 its repacked GEMV:
tests/fixtures/iquant/vec_dot.npz, computed by libggml-cpu with scripts/make_iquant_dot_goldens.py),
and their dequant_row to llmcore's dequantizer. The packed GEMM of prompt batches gives the tiled
kernels' bits for every 256-block i-quant, and IQ4_NL's and MXFP4's (their GEMVs too) their vec_dot's. The
whole-model check against llama.cpp's own logits (which also covers the tiled orders of batches) is
tests/test_iquant_goldens.py.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from test_cpu_simd_quants import (ACT_DTYPES, ISA_LEVELS, SOURCES, _compile_levels, _cpu_flags, _is_x86,
                                  extreme_weight_row, random_weight_row)

from llmcore.gguf import GGMLType, dequantize

cffi = pytest.importorskip("cffi")

GOLDENS = Path(__file__).parent / "fixtures" / "gguf" / "iq_dequant.npz"
DOT_GOLDENS = Path(__file__).parent / "fixtures" / "iquant" / "vec_dot.npz"
BLOCK_BYTES = 136
#: the types whose kernels quants_iq_grid.c and quants_bits.c add (IQ4_NL's is in quants_iq.c)
NEW_TYPES = ["IQ4_NL", "IQ3_S", "IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0",
             "MXFP4", "NVFP4", "Q1_0", "Q2_0"]
#: the types prompt batches multiply through the packed GEMM in the order of llama.cpp's tiled kernel
PACKED_TYPES = ["IQ4_XS", "IQ3_S", "IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"]
#: the types whose every product is one running sum over the 32-blocks (llama.cpp's repacked orders)
BLOCK_SUMS_TYPES = ["IQ4_NL", "MXFP4"]
ORDER_VEC_DOT, ORDER_KQ_TILED, ORDER_BLOCK_SUMS = 1, 2, 4  # lc_mm_packed.h
_FFI = cffi.FFI()
_FFI.cdef("""
void lc_quantize_row_q8_K(const float *x, void *y, int64_t n);
void lc_vec_dot_iq4_xs(int n, float *s, const void *w, const void *x);
void lc_vec_dot_iq4_xs_tiled(int n, float *s, const void *w, const void *x);
void lc_dequant_row_iq4_xs(const void *w, float *y, int64_t n);
void lc_vec_dot_q6_K(int n, float *s, const void *w, const void *x);
void lc_gemv_iq4_xs(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q6_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q3_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_vec_dot_q3_K(int n, float *s, const void *w, const void *x);
void lc_gemv_iq4_nl(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_mxfp4(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_tq1_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_tq2_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
size_t lc_packed_bytes(int type, int64_t k);
void lc_pack_rows(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed);
void lc_packed_mul(int type, int order, const void *packed, int nrows, int64_t k, const void *x, size_t x_bytes,
                   int64_t n_tokens, float *y, size_t ldy);
""" + "".join(f"void lc_vec_dot_{t.lower()}_tiled(int n, float *s, const void *w, const void *x);\n"
               for t in PACKED_TYPES if t != "IQ4_XS")
  + "".join(f"void lc_vec_dot_{t.lower()}(int n, float *s, const void *w, const void *x);\n"
            f"void lc_dequant_row_{t.lower()}(const void *w, float *y, int64_t n);\n" for t in NEW_TYPES))


@pytest.fixture(scope="module")
def libs(tmp_path_factory) -> dict:
    build = pytest.importorskip("llmcore_cpu_simd.build", reason="the cpu_simd plugin is not installed")
    out = tmp_path_factory.mktemp("lc_iquants")
    flags = _cpu_flags()
    levels = ISA_LEVELS if _is_x86() else {"scalar": ISA_LEVELS["scalar"]}
    runnable = [level for level, (_, needs) in levels.items() if set(needs) <= flags]
    # the quant kernels with the files of the newest types, which need ggml's tables (ggml_tables.h)
    built = _compile_levels(runnable, out, "lc_iquants", [*SOURCES, "quants_iq_grid.c", "quants_bits.c"],
                            [build.tables_dir()])
    return {level: _FFI.dlopen(str(so)) for level, so in built.items()}


def weight_rows() -> np.ndarray:
    """ggml-quantized rows (normal data) and random blocks with finite scales, 512 values a row."""
    goldens = np.load(GOLDENS)
    return np.concatenate([goldens["IQ4_XS.quantized"], goldens["IQ4_XS.random"]])


def ptr(a: np.ndarray, kind: str = "void *"):
    return _FFI.cast(kind, a.ctypes.data)


def quantize_q8_K(lib, x: np.ndarray) -> np.ndarray:
    y = np.zeros(len(x) // 256 * ACT_DTYPES["q8_K"].itemsize, np.uint8)
    lib.lc_quantize_row_q8_K(ptr(x, "float *"), ptr(y), len(x))
    return y


def ref_block_lanes(w_row: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """[blocks, 8] exact integer lanes of ggml's AVX2 iq4_xs dot."""
    unit = w_row.reshape(-1, BLOCK_BYTES).copy()
    unit[:, 0:2] = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    w_int = dequantize(unit, GGMLType.IQ4_XS, (len(unit), 256)).astype(np.int64)  # (ls - 32) * kvalue
    q8 = xq.view(ACT_DTYPES["q8_K"])["qs"].astype(np.int64)
    return (w_int * q8).reshape(len(unit), 8, 8, 4).sum(axis=(1, 3))  # [block, sub-block, lane, 4 values]


def ref_dots(w_row: np.ndarray, xq: np.ndarray) -> tuple[np.float32, np.float32]:
    lanes = ref_block_lanes(w_row, xq)
    d_w = w_row.reshape(-1, BLOCK_BYTES)[:, 0:2].copy().view(np.float16)[:, 0].astype(np.float32)
    d_x = xq.view(ACT_DTYPES["q8_K"])["d"].astype(np.float32)
    fma = lambda a, b, c: np.float32(np.float64(a) * np.float64(b) + np.float64(c))  # exact product, one rounding
    acc = np.zeros(8, np.float32)
    tiled = np.float32(0)
    for i in range(len(lanes)):
        d = np.float32(d_w[i] * d_x[i])
        acc = np.array([fma(d, np.float32(v), a) for v, a in zip(lanes[i], acc)], np.float32)
        tiled = fma(np.float32(np.float32(lanes[i].sum()) * d_w[i]), d_x[i], tiled)
    r = [np.float32(acc[k] + acc[k + 4]) for k in range(4)]
    return np.float32(np.float32(r[0] + r[2]) + np.float32(r[1] + r[3])), tiled


def test_dequant_row_matches_llmcore(libs):
    rows = weight_rows()
    for level, lib in libs.items():
        for row in rows:
            ours = np.zeros(512, np.float32)
            lib.lc_dequant_row_iq4_xs(ptr(row), ptr(ours, "float *"), 512)
            expected = dequantize(row, GGMLType.IQ4_XS, (512,))
            assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32)), level


def test_vec_dot_and_tiled_follow_ggml_order(libs):
    rng = np.random.default_rng(23)
    rows = weight_rows()
    for level, lib in libs.items():
        for trial in range(4):
            x = (rng.standard_normal(512) * rng.uniform(0.1, 10)).astype(np.float32)
            xq = quantize_q8_K(lib, x)
            for row in rows:
                want_dot, want_tiled = ref_dots(row, xq)
                got = np.zeros(2, np.float32)
                lib.lc_vec_dot_iq4_xs(512, ptr(got[0:1], "float *"), ptr(row), ptr(xq))
                lib.lc_vec_dot_iq4_xs_tiled(512, ptr(got[1:2], "float *"), ptr(row), ptr(xq))
                assert got[0].view(np.uint32) == want_dot.view(np.uint32), (level, trial, got[0], want_dot)
                assert got[1].view(np.uint32) == want_tiled.view(np.uint32), (level, trial, got[1], want_tiled)


def random_iq4_xs_row(k: int, rng: np.random.Generator) -> np.ndarray:
    """Random IQ4_XS blocks (every level and scale) with finite fp16 scales."""
    blocks = rng.integers(0, 256, (k // 256, BLOCK_BYTES), dtype=np.uint8)
    blocks[:, 0:2] = rng.uniform(-2, 2, (k // 256, 1)).astype(np.float16).view(np.uint8)
    return blocks.reshape(-1)


def extreme_iq4_xs_row(k: int) -> np.ndarray:
    """Every value the level -127 and every sub-block scale -32 (the largest products), d = 1."""
    blocks = np.zeros((k // 256, BLOCK_BYTES), np.uint8)
    blocks[:, 0:2] = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    return blocks.reshape(-1)


@pytest.mark.parametrize("type_name", ["IQ4_XS", "Q6_K", "Q3_K"])
def test_one_token_gemv_equals_vec_dot_bit_for_bit(libs, type_name):
    """Decode's product with an IQ4_XS, Q6_K or Q3_K matrix (four rows at a time on AVX2 and AVX-512, Q3_K
    on AVX-512 only, each row's eight integer lanes kept as vec_dot makes them; the rows past a multiple
    of four by vec_dot) gives each row exactly vec_dot's output: rows of random blocks and of the largest
    products, row counts around the groups of four, a token of +-127 only beside a normal one."""
    rng = np.random.default_rng(31)
    name = type_name.lower() if type_name == "IQ4_XS" else type_name[:2].lower() + "_K"
    random_row = random_iq4_xs_row if type_name == "IQ4_XS" else lambda k, rng: random_weight_row(name, k, rng)
    extreme_row = extreme_iq4_xs_row if type_name == "IQ4_XS" else lambda k: extreme_weight_row(name, k)
    levels = {level: lib for level, lib in libs.items() if type_name != "Q3_K" or level == "avx512"}
    if not levels:
        pytest.skip("Q3_K's GEMV is built for AVX-512 only, which this CPU lacks")
    for k in (256, 2816):
        rows = [random_row(k, rng) for _ in range(12)]
        rows.insert(5, extreme_row(k))
        w = np.concatenate(rows)
        row_bytes = len(w) // len(rows)
        for level, lib in levels.items():
            signs = rng.choice(np.float32([-1, 1]), k)
            for xq in (quantize_q8_K(lib, rng.standard_normal(k).astype(np.float32)), quantize_q8_K(lib, signs)):
                expected = np.zeros(len(rows), np.float32)
                for r in range(len(rows)):
                    getattr(lib, f"lc_vec_dot_{name}")(k, ptr(expected[r:r + 1], "float *"), ptr(w[r * row_bytes:]), ptr(xq))
                for nrows, prefetch in itertools.product((1, 3, 4, 6, 9, len(rows)), (1, 0)):
                    y = np.full(nrows + 1, np.nan, np.float32)
                    getattr(lib, f"lc_gemv_{name}")(k, ptr(w), row_bytes, nrows, ptr(xq), ptr(y, "float *"), prefetch)
                    np.testing.assert_array_equal(y[:nrows].view(np.uint32), expected[:nrows].view(np.uint32),
                                                  err_msg=f"{level} k={k} rows={nrows}")
                    assert np.isnan(y[nrows]), f"{level}: wrote past the rows"


@pytest.mark.parametrize("type_name", NEW_TYPES)
def test_vec_dot_equals_ggml_at_every_isa_level(libs, type_name):
    goldens = np.load(DOT_GOLDENS)
    rows, xq, dots = (goldens[f"{type_name}.{part}"] for part in ("rows", "xq", "dots"))
    vec_dot = lambda lib: getattr(lib, f"lc_vec_dot_{type_name.lower()}")
    for level, lib in libs.items():
        got = np.zeros(dots.shape, np.float32)
        for t in range(len(xq)):
            for r in range(len(rows)):
                vec_dot(lib)(512, ptr(got[t, r:r + 1], "float *"), ptr(rows[r]), ptr(xq[t]))
        differ = np.argwhere(got.view(np.uint32) != dots.view(np.uint32))
        assert differ.size == 0, (level, differ[:4].tolist(), got[tuple(differ[0])], dots[tuple(differ[0])])


@pytest.mark.parametrize("type_name", NEW_TYPES)
def test_dequant_row_matches_llmcore_at_every_isa_level(libs, type_name):
    rows = np.load(DOT_GOLDENS)[f"{type_name}.rows"]
    expected = dequantize(rows, GGMLType[type_name], (len(rows), 512))
    for level, lib in libs.items():
        ours = np.zeros((len(rows), 512), np.float32)
        for r, row in enumerate(rows):
            getattr(lib, f"lc_dequant_row_{type_name.lower()}")(ptr(row), ptr(ours[r], "float *"), 512)
        assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32)), level


def _assert_packed_gemm_equals(lib, qtype: int, order: int, w: np.ndarray, x: np.ndarray, expected: np.ndarray,
                               where: str) -> None:
    """The packed GEMM of the rows w (one packed block) with the tokens x, in ``order``, equals expected
    [token, row] bit for bit and writes nothing past the block's rows."""
    n, nrows, n_tokens = 512, len(w), len(x)
    size = lib.lc_packed_bytes(qtype, n)
    assert size, f"{where}: no packed kernel for the type"
    scratch = np.zeros(size + 64, np.uint8)
    packed = _FFI.cast("void *", scratch.ctypes.data + (-scratch.ctypes.data % 64))
    ldy = nrows + 3
    y = np.full((n_tokens, ldy), np.nan, np.float32)
    lib.lc_pack_rows(qtype, ptr(w), w.shape[1], nrows, n, packed)
    lib.lc_packed_mul(qtype, order, packed, nrows, n, ptr(x), x.shape[1], n_tokens, ptr(y, "float *"), ldy)
    np.testing.assert_array_equal(y[:, :nrows].view(np.uint32), expected.view(np.uint32),
                                  err_msg=f"{where} packed rows={nrows} tokens={n_tokens}")
    assert np.isnan(y[:, nrows:]).all(), f"{where}: the packed GEMM wrote past the block's rows"


@pytest.mark.parametrize("type_name", PACKED_TYPES)
def test_packed_gemm_equals_tiled_kernel(libs, type_name):
    """A prompt batch's packed GEMM gives each output exactly as the one-row tiled kernel, on every
    SIMD level: dpbusd builds pack the values + 128, the others (AVX2) signed bytes multiplied by
    ggml's sign trick. ggml's rows and activations, plus a token of +-127 only, whose products with
    the largest values would saturate maddubs's pairs on unsigned values; partial row blocks and
    token counts around the groups of four."""
    simd = {level: lib for level, lib in libs.items() if level != "scalar"}
    if not simd:
        pytest.skip("no AVX2 build runs on this CPU")
    goldens = np.load(DOT_GOLDENS)
    rows = goldens[f"{type_name}.rows"]
    signs = np.random.default_rng(29).choice(np.float32([-1, 1]), 512)
    qtype, n = int(GGMLType[type_name]), 512
    for level, lib in simd.items():
        xq = np.concatenate([goldens[f"{type_name}.xq"], quantize_q8_K(lib, signs)[None]])
        assert np.abs(xq[-1].view(ACT_DTYPES["q8_K"])["qs"]).min() == 127
        tiled = getattr(lib, f"lc_vec_dot_{type_name.lower()}_tiled")
        for nrows in (1, 5, len(rows)):
            w = np.ascontiguousarray(rows[:nrows])
            for n_tokens in (1, 4, 6, len(xq)):
                x = np.ascontiguousarray(xq[-n_tokens:])
                expected = np.zeros((n_tokens, nrows), np.float32)
                for t in range(n_tokens):
                    for r in range(nrows):
                        tiled(n, ptr(expected[t, r:r + 1], "float *"), ptr(w[r]), ptr(x[t]))
                _assert_packed_gemm_equals(lib, qtype, ORDER_KQ_TILED, w, x, expected, level)


def _block_sums_case(type_name: str):
    """ggml's rows and q8_0 activations of a repacked-order type, and a token of +-127 only: the
    largest products the sign trick multiplies; for MXFP4 a row of the smallest and largest exponents
    too (0 and 1 scale subnormal halves)"""
    goldens = np.load(DOT_GOLDENS)
    rows, xq = goldens[f"{type_name}.rows"], goldens[f"{type_name}.xq"]
    if type_name == "MXFP4":
        extremes = rows[0].reshape(-1, 17).copy()
        extremes[:, 0] = np.resize([0, 1, 2, 3, 127, 254], len(extremes))
        rows = np.concatenate([extremes.reshape(1, -1), rows])
    extreme = np.tile(np.frombuffer(np.float16(1.0).tobytes() + bytes([127, 129] * 16), np.uint8), 512 // 32)
    return rows, np.concatenate([xq, extreme[None]])


def _assert_gemv_equals_vec_dot(lib, name: str, k: int, rows: np.ndarray, xq: np.ndarray, where: str) -> np.ndarray:
    """lc_gemv_<name> of each token xq[t] over the first 1, 3, 4, 5 and all rows, with and without its
    prefetches, equals lc_vec_dot_<name> row by row and writes nothing past the rows; returns vec_dot's
    [token, row] outputs."""
    expected = np.zeros((len(xq), len(rows)), np.float32)
    for t, r in itertools.product(range(len(xq)), range(len(rows))):
        getattr(lib, f"lc_vec_dot_{name}")(k, ptr(expected[t, r:r + 1], "float *"), ptr(rows[r]), ptr(xq[t]))
    for t, nrows, prefetch in itertools.product(range(len(xq)), (1, 3, 4, 5, len(rows)), (1, 0)):
        y = np.full(nrows + 1, np.nan, np.float32)
        getattr(lib, f"lc_gemv_{name}")(k, ptr(rows), rows.shape[1], nrows, ptr(xq[t]), ptr(y, "float *"), prefetch)
        np.testing.assert_array_equal(y[:nrows].view(np.uint32), expected[t, :nrows].view(np.uint32),
                                      err_msg=f"{where} GEMV rows={nrows}")
        assert np.isnan(y[nrows]), f"{where}: the GEMV wrote past the rows"
    return expected


@pytest.mark.parametrize("type_name", BLOCK_SUMS_TYPES)
def test_block_sums_gemv_and_packed_gemm_equal_vec_dot(libs, type_name):
    """Decode's four-row GEMV (AVX2 and AVX-512) and a prompt's packed GEMM (its block-sums order) give
    each output of an IQ4_NL or MXFP4 matrix exactly as its vec_dot (llama.cpp's repacked GEMV, as
    test_vec_dot_equals_ggml_at_every_isa_level holds it): row counts around the groups of four,
    partial row blocks, token counts around the tile's."""
    simd = {level: lib for level, lib in libs.items() if level != "scalar"}
    if not simd:
        pytest.skip("no AVX2 build runs on this CPU")
    rows, xq = _block_sums_case(type_name)
    qtype, n, name = int(GGMLType[type_name]), 512, type_name.lower()
    for level, lib in simd.items():
        for k in (n - 32, n):  # an odd and an even count of blocks (the GEMV takes two at a time)
            expected = _assert_gemv_equals_vec_dot(lib, name, k, rows, xq, f"{level} k={k}")
        for nrows, n_tokens in itertools.product((1, 5, 8), (1, 2, 3, len(xq))):  # 8: a packed block on AVX2
            _assert_packed_gemm_equals(lib, qtype, ORDER_BLOCK_SUMS, np.ascontiguousarray(rows[:nrows]),
                                       np.ascontiguousarray(xq[-n_tokens:]), expected[-n_tokens:, :nrows], level)


def _ternary_case(type_name: str) -> tuple[np.ndarray, np.ndarray]:
    """ggml's rows and Q8_K activations, 20 rows (a full packed block and a part on every ISA level: the
    later ones ggml's with their digit bytes reversed), and a token of +127 only
    (its bsums to match): the largest lanes"""
    goldens = np.load(DOT_GOLDENS)
    rows, xq = goldens[f"{type_name}.rows"], goldens[f"{type_name}.xq"]
    n_digit_bytes = (rows.shape[1] // 2) - 2  # a 256-block's bytes (54 or 66) less its f16 d, twice
    reversed_rows = rows.reshape(len(rows), 2, -1).copy()
    reversed_rows[:, :, :n_digit_bytes] = reversed_rows[:, :, n_digit_bytes - 1::-1]
    rows = np.concatenate([rows, reversed_rows.reshape(len(rows), -1), rows[:4]])
    extreme = np.zeros(1, ACT_DTYPES["q8_K"])
    extreme["d"], extreme["qs"], extreme["bsums"] = 1.0, 127, 16 * 127
    return rows, np.concatenate([xq, np.tile(extreme.view(np.uint8), 2)[None]])


@pytest.mark.parametrize("type_name", ["TQ1_0", "TQ2_0"])
def test_ternary_gemv_and_packed_gemm_equal_vec_dot(libs, type_name):
    """Decode's four-row product (AVX2 and AVX-512: the digits straight from the bytes) and a prompt's
    packed GEMM (the digits unpacked once, 8 lanes a token) give each output of a TQ1_0 or TQ2_0 matrix
    exactly as its vec_dot (held to ggml's by test_vec_dot_equals_ggml_at_every_isa_level): row counts
    around the groups of four and the packed blocks, token counts around the tile's."""
    simd = {level: lib for level, lib in libs.items() if level != "scalar"}
    if not simd:
        pytest.skip("no AVX2 build runs on this CPU")
    rows, xq = _ternary_case(type_name)
    qtype, n, name = int(GGMLType[type_name]), 512, type_name.lower()
    for level, lib in simd.items():
        expected = _assert_gemv_equals_vec_dot(lib, name, n, rows, xq, level)
        block_rows = {"avx512": 16}.get(level, 8)
        for first, n_tokens in itertools.product((0, 16), (1, 2, 3, len(xq))):
            nrows = min(len(rows) - first, block_rows)  # a whole packed block, then 4 rows of one
            _assert_packed_gemm_equals(lib, qtype, ORDER_VEC_DOT, np.ascontiguousarray(rows[first:first + nrows]),
                                       np.ascontiguousarray(xq[-n_tokens:]), expected[-n_tokens:, first:first + nrows], level)
