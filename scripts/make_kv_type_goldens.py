"""Make the KV-cache-type goldens of tests/test_kv_cache_types.py: llama.cpp's logits with its K and V
caches in each type and flash attention on or off, for the combinations llama.cpp allows (a quantized
V cache needs flash attention), on the default model (SmolLM2-135M-Instruct Q4_1) and on the tiny
K-quant llama of tests/fixtures/kquant.

    /work/venv-oracle/bin/python scripts/make_kv_type_goldens.py [MODEL ...]

Needs llama-cpp-python 0.3.36 (the oracle; ``Llama(type_k=, type_v=, flash_attn=)``, where
``flash_attn`` True/False is llama.cpp's ``-fa on``/``-fa off``). Per model and combination, a prompt
of more than 64 tokens in one batch (so that flash attention takes ggml's tiled path for f16 and its
one-query path for the other types), then ``DECODED`` tokens one at a time (the default model's
greedy continuation with f16 caches and flash attention off, fed to every combination alike).
``smollm2_long`` does the same for a prompt of more than 256 tokens with a few combinations, so that a
decoded token's flash attention over f16 caches takes ggml's path that splits the cells among its
``N_THREADS`` threads. Written to ``tests/fixtures/kv_types/<model>.npz``: ``tokens``, ``n_prompt``,
``n_threads`` and per combination
``<k>_<v>_<fa>_idx`` / ``_val`` (the ``TOP_K`` largest logits of each row, ids and values, largest
first) and ``_lse`` (each row's log-sum-exp), plus ``kv_lines`` (llama.cpp's ``llama_kv_cache:
size = ...`` line per combination, at ``N_CTX`` cells). Also ``rows.npz``: random float32 rows (and
edge cases: zeros, ties of the largest magnitude, tiny and huge values) and the bytes ggml's CPU
backend stores for them in a cache of each type (``ggml_cpu_fp32_to_fp16``/``_bf16``, the x86
``quantize_row_q8_0``, ``quantize_row_*_ref``), called in llama-cpp-python's own libraries.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "fixtures" / "kv_types"
TOP_K = 16
N_CTX = 512
DECODED = 8

#: (K type, V type, flash attention) for every combination the test checks
COMBOS = [
    ("f16", "f16", False), ("f16", "f16", True),
    ("f32", "f32", False), ("f32", "f32", True),
    ("bf16", "bf16", False), ("bf16", "bf16", True),
    ("q8_0", "q8_0", True), ("q4_0", "q4_0", True), ("q4_1", "q4_1", True),
    ("iq4_nl", "iq4_nl", True), ("q5_0", "q5_0", True), ("q5_1", "q5_1", True),
    ("f16", "q8_0", True), ("q8_0", "f16", False), ("q8_0", "f16", True), ("q4_0", "f16", False),
]

PROMPT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
          "combined movable metal type, oil-based ink and a screw press adapted from the wine makers of "
          "the Rhine valley. Within fifty years printers were at work in more than two hundred cities across "
          "Europe, and the price of a book fell so far that a clerk could own several; pamphlets, calendars "
          "and broadsheets followed, and")


def combo_name(k: str, v: str, flash: bool) -> str:
    return f"{k}_{v}_{'fa' if flash else 'nofa'}"


def default_model() -> Path:
    sys.path.insert(0, str(ROOT))
    from llmcore.hub import default_model_path

    return default_model_path(progress=False)


#: a prompt of more than 256 tokens: llama.cpp's view of the cache is then 512 cells, and a decoded
#: token's flash attention over f16 caches splits the cells among its threads (N_THREADS)
LONG_PROMPT = " ".join(f"Item {i}: the {['red', 'green', 'blue', 'small', 'large'][i % 5]} box holds {i * 7 % 23} marbles."
                       for i in range(24)) + " Summing up, the boxes"
LONG_COMBOS = [("f16", "f16", True), ("f16", "f16", False), ("q8_0", "q8_0", True), ("f32", "f32", True)]
N_THREADS = 2

#: model name -> (where its GGUF is, its prompt: text, or token ids for the tiny model, whose vocabulary
#: is random; the combinations)
MODELS = {
    "smollm2": (default_model, PROMPT, COMBOS),
    "kquant_q4_k_m": (lambda: ROOT / "tests" / "fixtures" / "kquant" / "q4_k_m.gguf", [1, *range(40, 119)], COMBOS),
    "smollm2_long": (default_model, LONG_PROMPT, LONG_COMBOS),
}

_log_lines: list[str] = []


def _install_log_hook():
    import llama_cpp

    @llama_cpp.llama_log_callback
    def hook(level, text, user_data):
        _log_lines.append(text.decode(errors="replace"))

    llama_cpp.llama_log_set(hook, ctypes.c_void_p(0))
    return hook  # keep a reference: the C side holds the pointer


def run(path: Path, prompt: str | list[int], k: str, v: str, flash: bool, tokens: list[int] | None,
        n_prompt: int | None):
    import llama_cpp

    types = {"f32": llama_cpp.GGML_TYPE_F32, "f16": llama_cpp.GGML_TYPE_F16, "bf16": 30,
             "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0, "q4_1": llama_cpp.GGML_TYPE_Q4_1,
             "iq4_nl": llama_cpp.GGML_TYPE_IQ4_NL, "q5_0": llama_cpp.GGML_TYPE_Q5_0, "q5_1": llama_cpp.GGML_TYPE_Q5_1}
    _log_lines.clear()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, n_threads=N_THREADS,
                          logits_all=True, type_k=types[k], type_v=types[v], flash_attn=flash, verbose=True)
    kv_line = next(line.strip() for line in "".join(_log_lines).splitlines() if "llama_kv_cache: size =" in line)
    if tokens is None:  # the first combination: tokenize, and decode greedily
        tokens = list(prompt) if isinstance(prompt, list) else llm.tokenize(prompt.encode(), add_bos=True, special=True)
        n_prompt = len(tokens)
        llm.eval(tokens)
        for _ in range(DECODED):
            tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            llm.eval(tokens[-1:])
    else:
        llm.eval(tokens[:n_prompt])
        for token in tokens[n_prompt:]:
            llm.eval([token])
    logits = np.array(llm.scores[: llm.n_tokens], np.float32)
    llm.close()
    return tokens, n_prompt, logits, kv_line


ROW_WIDTH = 64
#: type -> (library, function, block bytes per 32 values)
ROW_WRITERS = {
    "f16": ("ggml-cpu", "ggml_cpu_fp32_to_fp16", 64), "bf16": ("ggml-cpu", "ggml_cpu_fp32_to_bf16", 64),
    "q8_0": ("ggml-cpu", "quantize_row_q8_0", 34), "q4_0": ("ggml-base", "quantize_row_q4_0_ref", 18),
    "q4_1": ("ggml-base", "quantize_row_q4_1_ref", 20), "q5_0": ("ggml-base", "quantize_row_q5_0_ref", 22),
    "q5_1": ("ggml-base", "quantize_row_q5_1_ref", 24), "iq4_nl": ("ggml-base", "quantize_row_iq4_nl_ref", 18),
}


def test_rows() -> np.ndarray:
    rng = np.random.default_rng(17)
    rows = [rng.standard_normal(ROW_WIDTH) * scale for scale in (1.0, 0.01, 30.0, 1e-4) for _ in range(8)]
    rows.append(np.zeros(ROW_WIDTH))
    tie = rng.standard_normal(ROW_WIDTH)
    tie[3], tie[20], tie[40], tie[41] = 4.0, -4.0, -5.0, 5.0  # equal magnitudes of both signs
    rows.append(tie)
    rows.append(np.round(rng.standard_normal(ROW_WIDTH) * 8) / 8)  # values on a grid: rounding ties
    rows.append(rng.uniform(-1e-20, 1e-20, ROW_WIDTH))
    rows.append(rng.uniform(0.5, 1.0, ROW_WIDTH))  # all positive
    rows.append(-rng.uniform(0.5, 1.0, ROW_WIDTH))  # all negative
    return np.array(rows, np.float32)


def write_row_goldens() -> None:
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    libs = {name: ctypes.CDLL(str(lib_dir / f"lib{name}.so")) for name in ("ggml-base", "ggml-cpu")}
    x = test_rows()
    arrays = {"x": x}
    for name, (lib, function, block_bytes) in ROW_WRITERS.items():
        fn = getattr(libs[lib], function)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        out = np.zeros((len(x), ROW_WIDTH // 32 * block_bytes), np.uint8)
        for row, values in zip(out, x):
            fn(values.ctypes.data, row.ctypes.data, ROW_WIDTH)
        arrays[name] = out
    np.savez_compressed(OUT_DIR / "rows.npz", **arrays)


def main() -> int:
    hook = _install_log_hook()  # noqa: F841
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_row_goldens()
    for model, (locate, prompt, combos) in MODELS.items():
        if sys.argv[1:] and model not in sys.argv[1:]:
            continue
        path = locate()
        tokens = n_prompt = None
        arrays: dict[str, np.ndarray] = {}
        kv_lines = []
        for k, v, flash in combos:
            tokens, n_prompt, logits, kv_line = run(path, prompt, k, v, flash, tokens, n_prompt)
            name = combo_name(k, v, flash)
            top = np.argsort(-logits, axis=1, kind="stable")[:, :TOP_K]
            peak = logits.max(axis=1, keepdims=True)
            arrays[f"{name}_idx"] = top.astype(np.int32)
            arrays[f"{name}_val"] = np.take_along_axis(logits, top, axis=1)
            arrays[f"{name}_lse"] = (peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))).astype(np.float32)
            kv_lines.append(kv_line)
            print(f"{model} {name}: {kv_line}", flush=True)
        out = OUT_DIR / f"{model}.npz"
        np.savez_compressed(out, tokens=np.array(tokens, np.int32), n_prompt=np.int32(n_prompt),
                            combos=np.array([combo_name(*c) for c in combos]), kv_lines=np.array(kv_lines),
                            n_threads=np.int32(N_THREADS), **arrays)
        print(f"{out}: {out.stat().st_size / 1024:.0f} KiB, {len(tokens)} rows ({n_prompt} prompt tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
