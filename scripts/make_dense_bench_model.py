"""Make a dense llama of BENCHMARKS.md whose every matrix row is a multiple of 256 values (so that
llama-quantize keeps the i-quant and K-quant types it is asked for): random weights of a realistic
shape (8 layers of width 1024, 16 query heads sharing 4 KV heads, FFN width 2816: about 110M
parameters in the blocks), written in F16 and quantized by llama.cpp's llama-quantize.

    /work/venv-oracle/bin/python scripts/make_dense_bench_model.py /path/to/llama-quantize OUT.gguf IQ4_XS
    llmcore bench -m OUT.gguf --backend cpu_simd -p 512 -n 128 -t 2 -r 5 --llama-bench /path/to/llama-bench

Needs the ``gguf`` package (the weights are random: the speed, not the text, is measured)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from make_arch_goldens import TinyModel, llama


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_quantize", help="llama.cpp's llama-quantize binary")
    parser.add_argument("out", type=Path, help="the GGUF to write")
    parser.add_argument("ftype", nargs="?", default="IQ4_XS", help="llama-quantize's file type (default IQ4_XS)")
    args = parser.parse_args()
    model = TinyModel("llama", seed=13, n_layer=8, n_embd=1024, n_head=16, n_head_kv=4, head_dim=64, n_ff=2816)
    llama(model)
    model.write_quantized(args.out, [args.llama_quantize], args.ftype)
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
