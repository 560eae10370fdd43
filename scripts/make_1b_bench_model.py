"""Make the ~1B-parameter random-weight llama of the CUDA benchmark (scripts/gpu_check.sh): 16
layers of width 2048, 32 query heads sharing 8 KV heads, FFN width 8192 (about 1.0B parameters in
the blocks), written in F16 and quantized to Q4_K_M by ``llmcore quantize`` (byte for byte
llama-quantize's).

    python scripts/make_1b_bench_model.py OUT.gguf

Needs the ``gguf`` package (the weights are random: the speed, not the text, is measured)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from make_arch_goldens import TinyModel, llama


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the Q4_K_M GGUF to write")
    args = parser.parse_args()
    model = TinyModel("llama", seed=11, n_layer=16, n_embd=2048, n_head=32, n_head_kv=8, head_dim=64, n_ff=8192)
    llama(model)
    model.write_quantized(args.out, [sys.executable, "-m", "llmcore", "quantize"])
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
