"""Make the goldens of tests/test_quantize_tool.py: the sha256 of what llama.cpp's llama-quantize
writes, per case.

    .venv/bin/python scripts/make_quantize_goldens.py /path/to/llama-quantize

The inputs are made here, deterministically, and not kept (the test makes them again and checks
their digests, recorded too): three random-weight F16 llamas (``write_random_llama``: ``main``, 16
layers whose rows are all multiples of 256; ``odd``, whose rows of 96 and 80 values make
llama-quantize fall back to other types; ``moe``, 4 experts per layer in 3-D tensors), importance
matrices for ``main`` in both of llama-imatrix's formats (``write_imatrix_gguf``,
``write_imatrix_dat``) and for ``moe`` (per expert), and the default model (SmolLM2-135M Q4_1,
requantized). Each case runs ``llama-quantize ARGS IN OUT TYPE 2`` and records
the arguments and the output's sha256 in ``tests/fixtures/quantize/goldens.json``, or, where
llama-quantize refuses (an importance matrix missing, requantizing without --allow-requantize),
the last line of its error.

The weights come from SplitMix64 and sums of uniforms, computed with exact integer and float64
operations only, so every machine and numpy version makes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = ROOT / "tests" / "fixtures" / "quantize" / "goldens.json"

ALL_FTYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
              "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"]


@dataclass(frozen=True)
class LlamaSpec:
    """The shape of a random llama."""

    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    seed: int
    tied: bool = False
    n_expert: int = 0  # > 0: the FFN is a mixture of experts (3-D ffn_*_exps tensors)


MODELS = {
    "main": LlamaSpec(n_layer=16, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_vocab=256, seed=17),
    "odd": LlamaSpec(n_layer=2, n_embd=96, n_ff=80, n_head=2, n_head_kv=1, n_vocab=128, seed=18, tied=True),
    "moe": LlamaSpec(n_layer=2, n_embd=256, n_ff=256, n_head=4, n_head_kv=1, n_vocab=256, seed=19, n_expert=4),
}


def _splitmix64(index: np.ndarray) -> np.ndarray:
    z = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(seed: int, n: int) -> np.ndarray:
    """n float64 values in [0, 1) from stream ``seed``."""
    index = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 40)
    return (_splitmix64(index) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def random_matrix(seed: int, rows: int, cols: int) -> np.ndarray:
    """Roughly normal weights of rows of varying scale, with a few outliers and an all-zero block."""
    u = _uniform(seed, rows * cols * 4).reshape(4, rows, cols)
    values = (u[0] + u[1] + u[2] + u[3] - 2.0) * math.sqrt(3.0) / math.sqrt(cols)
    values *= 0.25 + 2.0 * _uniform(seed + 7919, rows)[:, None]
    outliers = _uniform(seed + 104729, rows * cols).reshape(rows, cols) < 0.002
    values[outliers] *= 8.0
    values[min(3, rows - 1), :min(64, cols)] = 0.0
    return values


def write_random_llama(path: Path, spec: LlamaSpec) -> None:
    """A llama with random F16 weights (F32 norms), as convert_hf_to_gguf.py lays one out."""
    from llmcore.gguf import GGMLType, GGUFValueType, GGUFWriter

    u32 = GGUFValueType.UINT32
    writer = GGUFWriter(path, arch="llama")
    for key, value, vtype in (
        ("general.type", "model", None), ("general.name", f"random-llama-{spec.seed}", None),
        ("llama.block_count", spec.n_layer, u32), ("llama.context_length", 2048, u32),
        ("llama.embedding_length", spec.n_embd, u32), ("llama.feed_forward_length", spec.n_ff, u32),
        ("llama.attention.head_count", spec.n_head, u32), ("llama.attention.head_count_kv", spec.n_head_kv, u32),
        ("llama.rope.freq_base", 10000.0, GGUFValueType.FLOAT32),
        ("llama.attention.layer_norm_rms_epsilon", 1e-5, GGUFValueType.FLOAT32),
        ("general.file_type", 1, u32), ("llama.vocab_size", spec.n_vocab, u32),
        ("llama.rope.dimension_count", spec.n_embd // spec.n_head, u32),
        *((("llama.expert_count", spec.n_expert, u32), ("llama.expert_used_count", 2, u32)) if spec.n_expert else ()),
    ):
        writer.add_metadata(key, value, vtype)
    seed = spec.seed * 1000
    head_dim = spec.n_embd // spec.n_head

    def matrix(name: str, rows: int, cols: int, experts: int = 0) -> None:
        nonlocal seed
        seed += 1
        if experts:
            values = np.stack([random_matrix(seed * 16 + e, rows, cols) for e in range(experts)])
        else:
            values = random_matrix(seed, rows, cols)
        writer.add_tensor(name, values.astype(np.float16), GGMLType.F16)

    def norm(name: str) -> None:
        nonlocal seed
        seed += 1
        writer.add_tensor(name, (1.0 + 0.1 * (_uniform(seed, spec.n_embd) - 0.5)).astype(np.float32))

    matrix("token_embd.weight", spec.n_vocab, spec.n_embd)
    norm("output_norm.weight")
    if not spec.tied:
        matrix("output.weight", spec.n_vocab, spec.n_embd)
    for layer in range(spec.n_layer):
        blk = f"blk.{layer}"
        norm(f"{blk}.attn_norm.weight")
        matrix(f"{blk}.attn_q.weight", spec.n_embd, spec.n_embd)
        matrix(f"{blk}.attn_k.weight", spec.n_head_kv * head_dim, spec.n_embd)
        matrix(f"{blk}.attn_v.weight", spec.n_head_kv * head_dim, spec.n_embd)
        matrix(f"{blk}.attn_output.weight", spec.n_embd, spec.n_embd)
        norm(f"{blk}.ffn_norm.weight")
        if spec.n_expert:
            seed += 1
            writer.add_tensor(f"{blk}.ffn_gate_inp.weight", random_matrix(seed, spec.n_expert, spec.n_embd)
                              .astype(np.float32))
        suffix = "_exps" if spec.n_expert else ""
        matrix(f"{blk}.ffn_gate{suffix}.weight", spec.n_ff, spec.n_embd, spec.n_expert)
        matrix(f"{blk}.ffn_up{suffix}.weight", spec.n_ff, spec.n_embd, spec.n_expert)
        matrix(f"{blk}.ffn_down{suffix}.weight", spec.n_embd, spec.n_ff, spec.n_expert)
    writer.write()


def _imatrix_entries(spec: LlamaSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per linear weight (llama-imatrix records no token_embd): squared-activation sums and counts
    (one per expert); blk.1's ffn_up (or its first expert) has count 0 (llama-quantize then weighs it
    1), blk.2's attn_q is missing."""
    entries = {}
    names = [] if spec.tied else ["output.weight"]
    ffn = ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps") if spec.n_expert else ("ffn_gate", "ffn_up", "ffn_down")
    for layer in range(spec.n_layer):
        names += [f"blk.{layer}.{part}.weight" for part in ("attn_q", "attn_k", "attn_v", "attn_output", *ffn)]
    for index, name in enumerate(names):
        if name == "blk.2.attn_q.weight":
            continue
        cols = spec.n_ff if "ffn_down" in name else spec.n_embd
        experts = spec.n_expert if "_exps" in name else 1
        counts = np.full(experts, 40, np.float32)
        if name.startswith("blk.1.ffn_up"):
            counts[0] = 0
        sums = (0.05 + 3.0 * _uniform(900_000 + index, cols * experts) ** 2).reshape(experts, cols)
        entries[name] = ((sums * np.maximum(counts, 1)[:, None]).astype(np.float32).reshape(-1), counts)
    return entries


def write_imatrix_gguf(path: Path, spec: LlamaSpec) -> None:
    """llama-imatrix's GGUF format: ``<name>.in_sum2`` and ``<name>.counts`` (F32) per tensor."""
    from llmcore.gguf import GGUFValueType, GGUFWriter

    writer = GGUFWriter(path)
    writer.add_metadata("general.type", "imatrix")
    writer.add_metadata("imatrix.datasets", ["random-text.txt", "more.txt"], GGUFValueType.STRING)
    writer.add_metadata("imatrix.chunk_count", 10, GGUFValueType.UINT32)
    writer.add_metadata("imatrix.chunk_size", 512, GGUFValueType.UINT32)
    for name, (sums, counts) in _imatrix_entries(spec).items():
        writer.add_tensor(f"{name}.in_sum2", sums.reshape(counts.size, -1))
        writer.add_tensor(f"{name}.counts", counts.reshape(-1, 1))
    writer.write()


def write_imatrix_dat(path: Path, spec: LlamaSpec) -> None:
    """llama-imatrix's legacy format: per entry the name, ncall and the mean squares times ncall."""
    entries = _imatrix_entries(spec)
    parts = [struct.pack("<i", len(entries))]
    for name, (sums, counts) in entries.items():
        parts += [struct.pack("<i", len(name)), name.encode(), struct.pack("<ii", int(counts[0]), sums.size),
                  sums.tobytes()]
    parts += [struct.pack("<i", 10), struct.pack("<i", 11), b"legacy.text"]
    path.write_bytes(b"".join(parts))


def _cases() -> dict[str, tuple[str, list[str], str]]:
    """name -> (input, options, file type); inputs: main, odd, default-model."""
    cases: dict[str, tuple[str, list[str], str]] = {}
    for ftype in ALL_FTYPES:
        cases[f"main_{ftype}"] = ("main", [], ftype)
        if ftype not in ("F16", "BF16", "Q8_0"):  # their quantizers take no importance matrix
            cases[f"main_{ftype}_imatrix"] = ("main", ["--imatrix", "{imatrix_gguf}"], ftype)
    # the imatrix lacks blk.2.attn_q, which Q2_K_S needs: a type of its own for it, else an error
    attn_q = ["--tensor-type", "blk\\.2\\.attn_q=q4_k"]
    cases["main_Q2_K_S_imatrix"] = ("main", ["--imatrix", "{imatrix_gguf}", *attn_q], "Q2_K_S")
    cases["main_Q2_K_S_imatrix_dat"] = ("main", ["--imatrix", "{imatrix_dat}", *attn_q], "Q2_K_S")
    cases["main_Q2_K_S_missing_entry"] = ("main", ["--imatrix", "{imatrix_gguf}"], "Q2_K_S")
    cases["main_Q2_K_S_no_imatrix"] = ("main", [], "Q2_K_S")
    cases["main_requantize_refused"] = ("q4_0", [], "Q4_K_M")
    cases["main_requantize_Q4_0_to_Q5_K_M"] = ("q4_0", ["--allow-requantize"], "Q5_K_M")
    cases["main_Q4_K_M_imatrix_dat"] = ("main", ["--imatrix", "{imatrix_dat}"], "Q4_K_M")
    cases["main_Q4_K_S_include_attn"] = ("main", ["--imatrix", "{imatrix_gguf}", "--include-weights", "attn_",
                                                  "--include-weights", "output"], "Q4_K_S")
    cases["main_Q5_K_M_exclude_ffn"] = ("main", ["--imatrix", "{imatrix_gguf}", "--exclude-weights", "ffn"], "Q5_K_M")
    cases["main_Q4_K_M_leave_output"] = ("main", ["--leave-output-tensor"], "Q4_K_M")
    cases["main_Q4_K_M_pure"] = ("main", ["--pure"], "Q4_K_M")
    cases["main_Q3_K_M_types"] = ("main", ["--output-tensor-type", "q8_0", "--token-embedding-type", "Q4_0"],
                                  "Q3_K_M")
    cases["main_Q4_K_M_tensor_type"] = ("main", ["--tensor-type", "attn_q=q8_0", "--tensor-type", "ffn_down=q5_k"],
                                        "Q4_K_M")
    cases["main_Q6_K_override_kv"] = ("main", ["--override-kv", "llama.context_length=int:-4096",
                                               "--override-kv", "general.name=str:renamed",
                                               "--override-kv", "my.flag=bool:true",
                                               "--override-kv", "my.scale=float:0.1"], "Q6_K")
    cases["main_by_number_15"] = ("main", [], "15")
    cases["main_COPY"] = ("main", [], "COPY")
    cases["main_F32"] = ("main", [], "F32")
    for ftype in ("Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_S", "Q6_K", "Q4_0"):
        cases[f"odd_{ftype}"] = ("odd", [], ftype)
    for ftype in ("Q1_0", "Q2_0", "TQ1_0", "TQ2_0", "MXFP4_MOE", "IQ4_NL", "IQ4_XS"):
        cases[f"main_{ftype}"] = ("main", [], ftype)
    for ftype in ("IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_M"):
        cases[f"main_{ftype}_imatrix"] = ("main", ["--imatrix", "{imatrix_gguf}"], ftype)
    for ftype in ("IQ3_S", "IQ3_M"):
        cases[f"main_{ftype}"] = ("main", [], ftype)
    for ftype in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS"):
        cases[f"main_{ftype}_imatrix"] = ("main", ["--imatrix", "{imatrix_gguf}", *attn_q], ftype)
    cases["main_IQ2_XXS_no_imatrix"] = ("main", [], "IQ2_XXS")
    for ftype in ("Q4_K_M", "Q3_K_S", "Q5_0", "MXFP4_MOE", "TQ2_0", "IQ4_XS"):
        cases[f"moe_{ftype}"] = ("moe", [], ftype)
    for ftype in ("Q4_K_M", "Q2_K", "Q4_0", "IQ2_XS", "IQ1_M", "IQ3_XXS"):
        cases[f"moe_{ftype}_imatrix"] = ("moe", ["--imatrix", "{imatrix_moe}"], ftype)
    cases["smollm2_Q4_K_M"] = ("default-model", ["--allow-requantize"], "Q4_K_M")
    cases["smollm2_Q8_0"] = ("default-model", ["--allow-requantize"], "Q8_0")
    cases["smollm2_IQ4_XS"] = ("default-model", ["--allow-requantize"], "IQ4_XS")
    return cases


CASES = _cases()


def make_inputs(directory: Path) -> dict[str, Path]:
    """Write the inputs into ``directory``; name -> path relative to it (the imatrix's path is
    written into the output's metadata, so the cases run in ``directory``), the default model's
    absolute."""
    from llmcore.hub import default_model_path

    paths = {"default-model": Path(default_model_path(progress=False))}
    for name, spec in MODELS.items():
        paths[name] = Path(f"{name}.gguf")
        write_random_llama(directory / paths[name], spec)
    paths["imatrix_gguf"] = Path("imatrix.gguf")
    write_imatrix_gguf(directory / paths["imatrix_gguf"], MODELS["main"])
    paths["imatrix_dat"] = Path("imatrix.dat")
    write_imatrix_dat(directory / paths["imatrix_dat"], MODELS["main"])
    paths["imatrix_moe"] = Path("imatrix-moe.gguf")
    write_imatrix_gguf(directory / paths["imatrix_moe"], MODELS["moe"])
    paths["q4_0"] = Path("main-q4_0.gguf")  # made by the case main_Q4_0 (llmcore's or llama.cpp's: the same)
    return paths


def case_arguments(case: str, paths: dict[str, Path], output: Path) -> list[str]:
    """The command-line arguments after the program's name, OPTIONS IN OUT TYPE 2, to run in the
    inputs' directory."""
    source, options, ftype = CASES[case]
    options = [option.format(**{k: str(v) for k, v in paths.items()}) for option in options]
    return [*options, str(paths[source]), str(output), ftype, "2"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_quantize", help="path of llama.cpp's llama-quantize")
    args = parser.parse_args()
    from llmcore.hub.cache import sha256_file

    goldens: dict[str, object] = {"inputs": {}, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_inputs(Path(tmp))
        for name, path in paths.items():
            if name != "q4_0":  # made by a case
                goldens["inputs"][name] = sha256_file(Path(tmp) / path)
        for case, (source, options, ftype) in CASES.items():
            output = Path(tmp) / f"{case}.gguf"
            result = subprocess.run([args.llama_quantize, *case_arguments(case, paths, output)],
                                    capture_output=True, text=True, cwd=tmp)
            entry: dict[str, object] = {"input": source, "options": options, "type": ftype}
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines()
                entry["error"] = next((line.split("failed to quantize: ", 1)[1] for line in lines
                                       if "failed to quantize: " in line), lines[-1])
            else:
                entry["sha256"] = sha256_file(output)
                if case == "main_Q4_0":
                    output.rename(Path(tmp) / paths["q4_0"])
                else:
                    output.unlink()
            goldens["cases"][case] = entry
            print(f"{case}: {entry.get('sha256', entry.get('error'))}", file=sys.stderr)
    GOLDENS.parent.mkdir(parents=True, exist_ok=True)
    GOLDENS.write_text(json.dumps(goldens, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
