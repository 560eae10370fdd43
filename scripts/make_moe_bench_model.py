"""Make the mixture-of-experts model of BENCHMARKS.md: random weights of a realistic shape (8 layers
of width 1024, 16 query heads sharing 4 KV heads, 8 experts of width 2048 with 2 per token: about
420M parameters, 110M active), written in F16 and quantized to Q4_K_M by llama.cpp's llama-quantize.

    /work/venv-oracle/bin/python scripts/make_moe_bench_model.py /path/to/llama-quantize OUT.gguf
    llmcore bench -m OUT.gguf --backend cpu_simd --llama-bench /path/to/llama-bench

Needs the ``gguf`` package (the weights are random: the speed, not the text, is measured)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from make_arch_goldens import TinyModel, moe_decoder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_quantize", help="llama.cpp's llama-quantize binary")
    parser.add_argument("out", type=Path, help="the Q4_K_M GGUF to write")
    args = parser.parse_args()
    model = TinyModel("llama", seed=7, n_layer=8, n_embd=1024, n_head=16, n_head_kv=4, head_dim=64, n_ff=2048)
    moe_decoder(model, n_expert=8, n_used=2, n_ff=model.n_ff)
    model.write_quantized(args.out, [args.llama_quantize])
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
