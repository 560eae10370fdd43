#!/usr/bin/env python3
"""Rebuild the SPIR-V of every shader variant with glslc (``python build.py``).

The .spv files are committed so that running the backend needs no shader compiler; run this
after editing a .comp or .glsl file. Each variant is one source compiled with its defines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHT_TYPES = ("f32", "f16", "q4_0", "q4_1", "q8_0", "q4_k", "q6_k")
LEGACY_TYPES = ("q4_0", "q4_1", "q8_0")  # mul_mat has an exact-order variant for these

#: output name -> (source, defines)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"get_rows_{t}": ("get_rows.comp", (f"TYPE_{t.upper()}",)) for t in WEIGHT_TYPES},
    **{f"mul_mat_{t}": ("mul_mat.comp", (f"TYPE_{t.upper()}",)) for t in WEIGHT_TYPES},
    **{f"mul_mat_{t}_f64": ("mul_mat.comp", (f"TYPE_{t.upper()}", "EXACT_FMA")) for t in LEGACY_TYPES},
    "quantize_q8_1": ("quantize.comp", ("MODE_Q8_1",)),
    "quantize_q8_k": ("quantize.comp", ("MODE_Q8_K",)),
    "quantize_q8_1_f64": ("quantize.comp", ("MODE_Q8_1", "EXACT_FMA")),
    "quantize_q8_k_f64": ("quantize.comp", ("MODE_Q8_K", "EXACT_FMA")),
    "quantize_f16": ("quantize.comp", ("MODE_F16",)),
    "binary": ("binary.comp", ()),
    "unary": ("unary.comp", ()),
    "glu": ("glu.comp", ()),
    "glu_f64": ("glu.comp", ("EXACT_FMA",)),
    "unary_f64": ("unary.comp", ("EXACT_FMA",)),
    "norm": ("norm.comp", ()),
    "norm_f64": ("norm.comp", ("ACC_F64", "EXACT_FMA")),
    "rope": ("rope.comp", ()),
    "rope_f64": ("rope.comp", ("EXACT_FMA",)),
    "kv_store_f16": ("kv_store.comp", ("CACHE_F16",)),
    "kv_store_f32": ("kv_store.comp", ()),
    "attention_f16": ("attention.comp", ("CACHE_F16",)),
    "attention_f32": ("attention.comp", ()),
    "attention_f16_f64": ("attention.comp", ("CACHE_F16", "ACC_F64", "EXACT_FMA")),
    "attention_f32_f64": ("attention.comp", ("ACC_F64", "EXACT_FMA")),
}


def build(glslc: str = "glslc") -> None:
    if shutil.which(glslc) is None:
        sys.exit(f"{glslc} not found: install glslc (Debian/Ubuntu: apt-get install glslc) or the Vulkan SDK")
    for name, (source, defines) in VARIANTS.items():
        command = [glslc, "-O", "--target-env=vulkan1.0", "-fshader-stage=compute",
                   *(f"-D{d}" for d in defines), str(HERE / source), "-o", str(HERE / f"{name}.spv")]
        subprocess.run(command, check=True)
        print(f"built {name}.spv")


if __name__ == "__main__":
    build(*sys.argv[1:2])
