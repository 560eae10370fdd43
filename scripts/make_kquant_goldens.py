"""Make the K-quant, Q4_0, Q8_0 and BF16 goldens of tests/test_kquant_goldens.py: a tiny random llama whose widths are
multiples of 256 (so every matrix takes a K-quant), and one with 8 experts of which each token takes
2 (Mixtral's layout: Q4_K experts by the repacked GEMV, Q6_K ones by vec_dot or, for 8 routed rows
or more, the tiled kernel), quantized by llama.cpp's llama-quantize (also to Q4_0, whose matrices
llama.cpp repacks like Q4_K's, and Q2_K, a mixture of Q2_K and Q3_K matrices, whose Q2_K ones it
repacks where the CPU has AVX-512, and BF16, whose batches it multiplies with AVX512-BF16 where the
CPU has that: make those fixtures on such a CPU), and the logits llama.cpp computes for it: a 40-token prompt in one batch (the prompt path: packed GEMM, the
tiled and repacked K-quant orders, batched attention), then 8 tokens one at a time (the decode path).

    /work/venv-oracle/bin/python scripts/make_kquant_goldens.py /path/to/llama-quantize

Needs llama-cpp-python (the oracle) and the ``gguf`` package. Writes, per quantization,
``tests/fixtures/kquant/[moe_]<ftype>.gguf`` and ``<ftype>.logits.npz`` (``prompt``, ``decoded`` int32
token ids, ``logits`` float32 [len(prompt) + len(decoded), n_vocab]).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from make_arch_goldens import TinyModel, moe_decoder, rms_decoder

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "kquant"
FTYPES = ("Q4_K_M", "Q5_K_M", "Q4_0", "Q2_K", "Q3_K_M", "Q8_0", "BF16")
MOE_FTYPES = ("Q4_K_M", "Q4_0")
PROMPT = [1, *range(40, 79)]  # 40 tokens
DECODED = [300, 45, 200, 511, 17, 99, 260, 400]


def llama_cpp_logits(path: Path) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=128, n_threads=2, logits_all=True, verbose=False)
    llm.eval(PROMPT)
    for token in DECODED:
        llm.eval([token])
    return np.array(llm.scores[: llm.n_tokens], np.float32)


def write_logits(path: Path) -> None:
    """llama.cpp's logits for the quantized model at ``path``, saved beside it as ``.logits.npz``."""
    logits = llama_cpp_logits(path)
    np.savez_compressed(path.with_suffix(".logits.npz"), prompt=np.array(PROMPT, np.int32),
                        decoded=np.array(DECODED, np.int32), logits=logits)
    print(f"{path.stem}: {path.stat().st_size / 1024:.0f} KiB, {len(logits)} rows")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_quantize", help="llama.cpp's llama-quantize binary")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    dense = TinyModel("llama", seed=4242, n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_ff=512)
    rms_decoder(dense)
    moe = TinyModel("llama", seed=4343, n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_ff=256)
    moe_decoder(moe, n_expert=8, n_used=2, n_ff=moe.n_ff)
    with tempfile.TemporaryDirectory() as tmp:
        for model, prefix, ftypes in ((dense, "", FTYPES), (moe, "moe_", MOE_FTYPES)):
            f32 = Path(tmp) / f"{prefix}f32.gguf"
            model.write(f32)
            for ftype in ftypes:
                path = OUT_DIR / f"{prefix}{ftype.lower()}.gguf"
                subprocess.run([args.llama_quantize, str(f32), str(path), ftype], check=True, capture_output=True)
                write_logits(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
