"""Make the i-quant goldens of tests/test_iquant_goldens.py: a tiny random llama whose widths are
multiples of 256 (narrower rows make llama-quantize fall back to other types), quantized by llama.cpp's
llama-quantize to each i-quant, ternary, FP4 and 1/2-bit type (with an importance matrix made by
llama-imatrix from a short text, which the IQ1/IQ2/IQ3 mixtures need), and the logits llama.cpp
computes for it: a 40-token prompt in one batch, then 8 tokens one at a time (as
scripts/make_kquant_goldens.py does).

    /work/venv-oracle/bin/python scripts/make_iquant_goldens.py /path/to/llama.cpp/build/bin

Needs llama-cpp-python (the oracle), the ``gguf`` package, and llama-quantize and llama-imatrix of
the same llama.cpp release in the given directory. Writes, per fixture,
``tests/fixtures/iquant/<name>.gguf`` and ``<name>.logits.npz`` (``prompt``, ``decoded`` int32 token
ids, ``logits`` float32 [len(prompt) + len(decoded), n_vocab]).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from make_arch_goldens import TinyModel, rms_decoder
from make_kquant_goldens import write_logits

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "iquant"

# fixture name -> llama-quantize arguments before the file names, and the ftype. The token
# embeddings take the type itself (its get_rows) except where the type needs an importance matrix:
# llama-imatrix records none for them (they are looked up, not multiplied).
EMBD = "--token-embedding-type"
FIXTURES: dict[str, tuple[list[str], str]] = {
    "iq4_nl": ([EMBD, "iq4_nl"], "IQ4_NL"),
    "iq4_xs": ([EMBD, "iq4_xs"], "IQ4_XS"),
    "tq1_0": ([EMBD, "tq1_0"], "TQ1_0"),
    "tq2_0": ([EMBD, "tq2_0"], "TQ2_0"),
    "iq3_s": ([EMBD, "iq3_s"], "IQ3_S"),
    "iq3_xxs": ([EMBD, "iq3_xxs"], "IQ3_XXS"),  # with IQ2_S and IQ3_S tensors in its mixture
    "iq2_s": ([EMBD, "iq2_s"], "IQ2_S"),
    # attn_v of the type itself, not the mixture's Q2_K: these fixtures check the i-quant kernels (Q2_K,
    # which llama.cpp repacks on AVX-512 CPUs, has tests/test_kquant_goldens.py's q2_k fixture)
    "iq2_xs": (["--tensor-type", "attn_v=iq2_xs"], "IQ2_XS"),
    "iq2_xxs": (["--tensor-type", "attn_v=iq2_xxs"], "IQ2_XXS"),
    "iq1_s": (["--tensor-type", "attn_v=iq1_s"], "IQ1_S"),
    "iq1_m": ([], "IQ1_M"),
    "q1_0": ([EMBD, "q1_0"], "Q1_0"),
    "q2_0": ([EMBD, "q2_0"], "Q2_0"),
    # no ftype makes these for a dense model: every matrix but the output is overridden
    "mxfp4": (["--pure", "--tensor-type", "attn=mxfp4", "--tensor-type", "ffn=mxfp4", EMBD, "mxfp4"], "Q8_0"),
    "nvfp4": (["--pure", "--tensor-type", "attn=nvfp4", "--tensor-type", "ffn=nvfp4", EMBD, "nvfp4"], "Q8_0"),
}

CALIBRATION = """\
The quick brown fox jumps over the lazy dog. A language model reads a text one token at a time and
predicts the next one; quantization stores its weights in fewer bits, and an importance matrix tells
the quantizer which columns matter most, measured from the activations a short text produces.
Numbers such as 3.14159, 2.71828 and 1.41421 appear too, with punctuation: (brackets), "quotes", and
a list - one, two, three - so that the byte tokens vary.
""" * 6


def run(tools: Path, *args: str) -> None:
    env = dict(os.environ, LD_LIBRARY_PATH=f"{tools}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    subprocess.run([str(tools / args[0]), *args[1:]], check=True, capture_output=True, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tools", type=Path, help="the directory of llama-quantize and llama-imatrix")
    parser.add_argument("names", nargs="*", help="fixtures to make (default: all)")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model = TinyModel("llama", seed=1717, n_layer=1, n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_ff=512)
    rms_decoder(model)
    with tempfile.TemporaryDirectory() as tmp:
        f32, text, imatrix = Path(tmp) / "f32.gguf", Path(tmp) / "calibration.txt", Path(tmp) / "imatrix.gguf"
        model.write(f32)
        text.write_text(CALIBRATION)
        run(args.tools, "llama-imatrix", "-m", str(f32), "-f", str(text), "-o", str(imatrix), "-c", "128", "-t", "2")
        for name in args.names or FIXTURES:
            options, ftype = FIXTURES[name]
            path = OUT_DIR / f"{name}.gguf"
            run(args.tools, "llama-quantize", "--imatrix", str(imatrix), *options, str(f32), str(path), ftype, "2")
            write_logits(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
