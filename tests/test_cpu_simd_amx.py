"""cpu_simd's AMX-INT8 tiles (csrc/amx.c), used for the legacy types' prompt GEMM only where the OS
grants the tile state, and the silent fallback everywhere else.

Where /proc/cpuinfo lists amx_tile and amx_int8 and the OS grants the request, the tile path's outputs
must be vec_dot's bits (the same exact integer lane sums, then the same float steps). Everywhere, a
refusal (``LLMCORE_AMX=0``, or a CPU that advertises AMX which the OS refuses: faked here on CPUs
without AMX, where the real arch_prctl request fails) must leave the vector kernels running with the
same logits, and the AMX source must compile with the AMX flags even where it cannot run.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from conftest import golden_names, load_golden
from gguf import GGMLQuantizationType as T

pytest.importorskip("llmcore_cpu_simd", reason="the cpu_simd plugin is not installed")
from cffi import FFI  # noqa: E402
from llmcore.engine.batch import Batch  # noqa: E402
from llmcore.engine.context import Context, LayerPlacement  # noqa: E402
from llmcore.engine.model import Model  # noqa: E402
from llmcore_cpu_simd import CpuSimdBackend, build, isa, library  # noqa: E402

_status = CpuSimdBackend.probe()
assert _status.usable, f"cpu_simd is installed but cannot run: {_status.reason}"  # a failure, never a skip

CDEF = """
size_t lc_packed_bytes(int type, int64_t k);
void lc_pack_rows(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed);
void lc_packed_mul(int type, int order, const void *packed, int nrows, int64_t k, const void *x, size_t x_bytes,
                   int64_t n_tokens, float *y, size_t ldy);
int lc_amx_active(void);
int lc_amx_use(int on);
void lc_vec_dot_q4_0(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q4_1(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q5_0(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q5_1(int n, float *s, const void *w, const void *x);
void lc_vec_dot_q8_0(int n, float *s, const void *w, const void *x);
"""
_FFI = FFI()
_FFI.cdef(CDEF)
ORDER_VEC_DOT = 1  # lc_mm_packed.h

# the legacy types the tiles take: type, bytes per block, activation bytes per block (q8_0 or
# q8_1), byte offsets of the fp16 fields (d, then m), where the quants start
LEGACY = {
    "q4_0": (T.Q4_0, 18, 34, (0,), 2),
    "q4_1": (T.Q4_1, 20, 36, (0, 2), 4),
    "q5_0": (T.Q5_0, 22, 34, (0,), 6),
    "q5_1": (T.Q5_1, 24, 36, (0, 2), 8),
    "q8_0": (T.Q8_0, 34, 34, (0,), 2),
}
AMX_TOKENS = 16  # lc_amx.h's LC_AMX_TOKENS


def _plugin_lib(level: str):
    """The plugin's own library for ``level`` (loaded the plugin's way, AMX decided), opened again
    through this test's declarations: the same handle, the same AMX switch."""
    library.load(level)
    return _FFI.dlopen(str(build.build(level)))


def _ptr(a: np.ndarray):
    return _FFI.cast("void *", a.ctypes.data)


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).view(np.uint8).reshape(-1, 2)


def weight_rows(name: str, k: int, nrows: int, rng: np.random.Generator) -> np.ndarray:
    """``nrows`` rows of random blocks (the first row's quants all ones: the largest products), scales
    of both signs; Q8_0's quants kept off -128, which ggml's quantizer never writes."""
    _, block_bytes, _, f16_at, qs_at = LEGACY[name]
    blocks = rng.integers(0, 256, (nrows, k // 32, block_bytes), dtype=np.uint8)
    blocks[0] = 0x7F if name == "q8_0" else 0xFF
    if name == "q8_0":
        qs = blocks[:, :, qs_at:].view(np.int8)
        np.maximum(qs, -127, out=qs)
    for off in f16_at:
        scales = rng.uniform(0.25, 1.0, nrows * (k // 32)) * rng.choice([-1, 1], nrows * (k // 32)) / 64
        blocks[:, :, off:off + 2] = _f16_bytes(scales).reshape(nrows, k // 32, 2)
    return blocks.reshape(nrows, -1)


def activation_rows(name: str, k: int, n_tokens: int, rng: np.random.Generator) -> np.ndarray:
    """``n_tokens`` rows of q8_0 or q8_1 blocks (quants in [-127, 127]; the first token all 127)."""
    act_bytes = LEGACY[name][2]
    blocks = np.zeros((n_tokens, k // 32, act_bytes), np.uint8)
    qs = rng.integers(-127, 128, (n_tokens, k // 32, 32)).astype(np.int8)
    qs[0] = 127
    blocks[:, :, act_bytes - 32:] = qs.view(np.uint8)
    d = rng.uniform(0.5, 1.0, (n_tokens, k // 32)) / 127
    blocks[:, :, 0:2] = _f16_bytes(d).reshape(n_tokens, k // 32, 2)
    if act_bytes == 36:  # q8_1's s: d times the block's quant sum
        blocks[:, :, 2:4] = _f16_bytes(d * qs.astype(np.float64).sum(axis=2)).reshape(n_tokens, k // 32, 2)
    return blocks.reshape(n_tokens, -1)


def assert_packed_equals_vec_dot(lib) -> None:
    """The packed GEMM of tile-sized batches (token groups of 16 and the tokens left over, blocks of
    16 rows, and partial ones) gives each output with lc_vec_dot_*'s bits, for every legacy type."""
    rng = np.random.default_rng(14)
    for name, (qtype, _, _, _, _) in LEGACY.items():
        for k in (576, 2816):
            size = lib.lc_packed_bytes(int(qtype), k)
            assert size, f"{name}: no packed kernel"
            block_rows = size // (k // 32 * 40)  # a packed 32-block: 40 bytes per row (8 or 16 rows)
            buffer = np.zeros(size + 64, np.uint8)
            packed = _FFI.cast("void *", buffer.ctypes.data + (-buffer.ctypes.data % 64))
            for nrows, n_tokens in ((16, 16), (5, 35), (8, 17)):
                w, x = weight_rows(name, k, nrows, rng), activation_rows(name, k, n_tokens, rng)
                expected = np.zeros((n_tokens, nrows), np.float32)
                dot, out = getattr(lib, f"lc_vec_dot_{name}"), np.zeros(1, np.float32)
                for t in range(n_tokens):
                    for r in range(nrows):
                        dot(k, _FFI.cast("float *", out.ctypes.data), _ptr(w[r]), _ptr(x[t]))
                        expected[t, r] = out[0]
                ldy = nrows + 3
                y = np.full((n_tokens, ldy), np.nan, np.float32)
                for r0 in range(0, nrows, block_rows):
                    n = min(block_rows, nrows - r0)
                    lib.lc_pack_rows(int(qtype), _ptr(w[r0:]), w.shape[1], n, k, packed)
                    lib.lc_packed_mul(int(qtype), ORDER_VEC_DOT, packed, n, k, _ptr(x), x.shape[1], n_tokens,
                                      _FFI.cast("float *", y[:, r0:].ctypes.data), ldy)
                np.testing.assert_array_equal(y[:, :nrows].view(np.uint32), expected.view(np.uint32),
                                              err_msg=f"{name} k={k} rows={nrows} tokens={n_tokens}")
                assert np.isnan(y[:, nrows:]).all(), f"{name}: wrote past the block's rows"


def _no_amx_reason() -> str | None:
    """Why this CPU cannot run the tiles, or None."""
    flags = isa.cpu_flags()
    missing = [f for f in library.AMX_FLAGS if f not in flags]
    return f"this CPU has no AMX (cpuinfo lacks {missing[0]})" if missing else None


def test_amx_tiles_equal_vec_dot_bit_for_bit():
    """Where the OS grants AMX: the AVX-512 build takes the legacy types' token groups through the
    tiles, and every output is vec_dot's bits."""
    reason = _no_amx_reason()
    if reason:
        pytest.skip(reason)
    if "avx512" not in isa.supported_levels():
        pytest.skip("this CPU has AMX but not the AVX-512 level whose build holds the tiles")
    state = library.amx_state("avx512")
    if state != "granted":
        pytest.skip(f"AMX: {state}")
    lib = _plugin_lib("avx512")
    assert lib.lc_amx_active() == 1
    assert_packed_equals_vec_dot(lib)


def test_vector_fallback_equals_vec_dot_bit_for_bit():
    """Where AMX is off (any CPU's best level with the tiles switched off): the same batches through
    the vector kernels give the same bits, so the fallback changes no number."""
    level = isa.supported_levels()[-1]
    if level == "scalar":
        pytest.skip("the scalar build has no packed GEMM")
    lib = _plugin_lib(level)
    try:
        assert lib.lc_amx_use(0) == 0
        assert_packed_equals_vec_dot(lib)
    finally:
        library.use_amx(library.load(level))


@pytest.fixture(scope="module")
def model(default_model_path):
    return Model(default_model_path)


def _prompt_logits(model: Model) -> np.ndarray:
    """All logits of a 40-token batch (two tile groups and 8 tokens more through every Q4_1 and
    Q8_0 matrix of the default model)."""
    record, _ = load_golden(golden_names()[0])
    tokens = (record["prompt_tokens"] + record["greedy_tokens"])[:40]
    assert len(tokens) >= 2 * AMX_TOKENS
    backend = CpuSimdBackend(n_threads=2)
    context = Context(model, LayerPlacement.single(backend, model.hparams.n_layer), n_ctx=64)
    return context.decode(Batch.for_sequence(tokens, 0, all_logits=True))


def _fake_amx_flags(monkeypatch) -> None:
    real = isa.cpu_flags()
    monkeypatch.setattr(isa, "cpu_flags", lambda: real | set(library.AMX_FLAGS))


def test_os_refusal_falls_back_with_the_same_logits(model, monkeypatch):
    """A CPU that advertises AMX where the OS refuses the tile state (faked here: this CPU's flags
    plus amx_tile and amx_int8, the real arch_prctl request then failing): the request is refused,
    the tiles stay off, nothing crashes and the logits are those of the default state."""
    if _no_amx_reason() is None and library.amx_state(isa.supported_levels()[-1]) == "granted":
        pytest.skip("this CPU has AMX and the OS grants it: no refusal to provoke")
    level = isa.supported_levels()[-1]
    lib = library.load(level)
    expected = _prompt_logits(model)
    _fake_amx_flags(monkeypatch)
    try:
        assert library.use_amx(lib) == "refused by the OS"
        assert lib.lc_amx_active() == 0
        np.testing.assert_array_equal(_prompt_logits(model).view(np.uint32), expected.view(np.uint32))
    finally:
        monkeypatch.undo()
        library.use_amx(lib)


def test_env_switch_forces_the_fallback_with_the_same_logits(model, monkeypatch):
    """``LLMCORE_AMX=0`` keeps the tiles off even where the CPU advertises AMX (really, or faked),
    without asking the OS; the logits are those with AMX where it is granted, the default's elsewhere."""
    level = isa.supported_levels()[-1]
    lib = library.load(level)
    expected = _prompt_logits(model)
    if _no_amx_reason() is not None:
        _fake_amx_flags(monkeypatch)
    monkeypatch.setenv(library.AMX_ENV, "0")
    try:
        assert library.use_amx(lib) == f"off ({library.AMX_ENV}=0)"
        assert lib.lc_amx_active() == 0
        np.testing.assert_array_equal(_prompt_logits(model).view(np.uint32), expected.view(np.uint32))
    finally:
        monkeypatch.undo()
        library.use_amx(lib)


def test_features_line_says_the_amx_state():
    """``llmcore backends`` shows the decision among the device's features."""
    features = _status.devices[0].features
    assert f"amx: {library.amx_state(isa.supported_levels()[-1])}" in features


def test_amx_source_compiles_with_the_amx_flags(tmp_path, monkeypatch):
    """amx.c and mm_packed.c compile with the flags an AMX CPU's AVX-512 build gets (here too, where
    nothing of it can run): the tile instructions are in the object, the hook calls them."""
    cc = build.compiler()
    if cc is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset({"avx512_vnni", *library.AMX_FLAGS}))
    flags = isa.compiler_flags("avx512")
    assert "-mamx-tile" in flags and "-mamx-int8" in flags
    common = [f for f in build._COMMON_FLAGS if f != "-shared"]
    objects = {}
    for source in ("amx.c", "mm_packed.c"):
        objects[source] = tmp_path / source.replace(".c", ".o")
        result = subprocess.run([cc, *common, *flags, f"-I{build.tables_dir()}", "-c", "-o", str(objects[source]),
                                 str(build.SOURCE_DIR / source)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    objdump, nm = shutil.which("objdump"), shutil.which("nm")
    if objdump is None or nm is None:
        pytest.skip("no objdump/nm to look inside the objects")
    code = subprocess.run([objdump, "-d", str(objects["amx.c"])], capture_output=True, text=True).stdout
    for instruction in ("ldtilecfg", "tileloadd", "tdpbsud", "tdpbssd", "tilestored", "tilerelease"):
        assert instruction in code, f"amx.c: no {instruction}"
    undefined = subprocess.run([nm, "-u", str(objects["mm_packed.c"])], capture_output=True, text=True).stdout
    assert "lc_amx_lane_sums" in undefined and "lc_amx_active" in undefined
