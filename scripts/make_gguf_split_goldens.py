"""Make the goldens of tests/test_gguf_split_tool.py: what llama.cpp's llama-gguf-split writes.

    .venv/bin/python scripts/make_gguf_split_goldens.py /path/to/llama-gguf-split

Writes two seeded inputs into tests/fixtures/gguf_split/ (``mixed.gguf``: every kind of metadata
value and many tensor types, odd sizes, a tensor whose trailing dimension is 1; ``keys.gguf``:
``general.alignment = 64`` and ``split.*`` keys in the middle of the metadata, as gguf-py writes
them), then runs llama-gguf-split on them, on two tiny models of tests/fixtures/arch and on the
default model (SmolLM2), and records in ``goldens.json``, per case: the input's sha256, the
arguments, the oracle's ``--dry-run`` plan (its stdout), the sha256 of every split it writes and of
``--merge`` of those splits (or the error it gives). The split files themselves are not kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from llmcore.hub.cache import sha256_file as sha256

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "fixtures" / "gguf_split"
ARCH = ROOT / "tests" / "fixtures" / "arch"

# name -> (input, llama-gguf-split arguments); "default-model" is llmcore.hub.default_model_path()
CASES: dict[str, tuple[str, list[str]]] = {
    "mixed_default": ("mixed.gguf", []),
    "mixed_max_tensors_3": ("mixed.gguf", ["--split-max-tensors", "3"]),
    "mixed_max_tensors_3_no_first": ("mixed.gguf", ["--split-max-tensors", "3", "--no-tensor-first-split"]),
    "mixed_max_tensors_1": ("mixed.gguf", ["--split-max-tensors", "1"]),
    "mixed_max_size_1M": ("mixed.gguf", ["--split-max-size", "1M"]),
    "keys_max_tensors_4": ("keys.gguf", ["--split-max-tensors", "4"]),
    "gemma3_max_size_1M": ("arch/gemma3.gguf", ["--split-max-size", "1M"]),
    "gemma3_max_size_1M_no_first": ("arch/gemma3.gguf", ["--split-max-size", "1M", "--no-tensor-first-split"]),
    "llama_max_tensors_5": ("arch/llama.gguf", ["--split-max-tensors", "5"]),
    "smollm2_max_size_50M": ("default-model", ["--split-max-size", "50M"]),
}


def input_path(name: str) -> Path:
    if name == "default-model":
        from llmcore.hub import default_model_path

        return Path(default_model_path(progress=False))
    if name.startswith("arch/"):
        return ARCH / name[len("arch/"):]
    return OUT_DIR / name


def write_mixed(path: Path) -> None:
    """Every metadata value type, and tensors of many types and odd sizes (llmcore's writer)."""
    from llmcore.gguf import GGML_QUANT_SIZES, GGMLType, GGUFValueType, GGUFWriter

    rng = np.random.default_rng(1717)
    writer = GGUFWriter(path, arch="llama")
    writer.add_metadata("general.name", "gguf-split fixture \u00e9\u4e2d")
    for vtype, value in [
        (GGUFValueType.UINT8, 200), (GGUFValueType.INT8, -100), (GGUFValueType.UINT16, 60000),
        (GGUFValueType.INT16, -30000), (GGUFValueType.UINT32, 4_000_000_000), (GGUFValueType.INT32, -2_000_000_000),
        (GGUFValueType.FLOAT32, 0.1), (GGUFValueType.UINT64, 2**63 + 5), (GGUFValueType.INT64, -(2**62)),
        (GGUFValueType.FLOAT64, 3.141592653589793), (GGUFValueType.BOOL, True), (GGUFValueType.STRING, ""),
    ]:
        writer.add_metadata(f"test.scalar.{vtype.name.lower()}", value, vtype)
    writer.add_metadata("test.array.int32", np.arange(-5, 12, dtype=np.int32))
    writer.add_metadata("test.array.float32", rng.standard_normal(9).astype(np.float32))
    writer.add_metadata("test.array.uint8", np.arange(7, dtype=np.uint8), GGUFValueType.UINT8)
    writer.add_metadata("test.array.bool", [True, False, True], GGUFValueType.BOOL)
    writer.add_metadata("test.array.string", ["a", "", "tokens \u2581with spaces", "\n"], GGUFValueType.STRING)
    writer.add_metadata("test.array.empty", [], GGUFValueType.INT32)
    writer.add_tensor("odd.f32", rng.standard_normal(5).astype(np.float32))
    writer.add_tensor("matrix.f16", rng.standard_normal((3, 7)).astype(np.float16))
    writer.add_tensor("trailing_one.f32", rng.standard_normal((1, 16)).astype(np.float32))  # ne = [16, 1]
    writer.add_tensor("cube.f32", rng.standard_normal((2, 3, 8)).astype(np.float32))
    writer.add_tensor("bits.bf16", rng.integers(0, 2**16, (4, 32), dtype=np.uint16), GGMLType.BF16)
    writer.add_tensor("ids.i32", rng.integers(-1000, 1000, 11, dtype=np.int32))
    writer.add_tensor("small.i8", rng.integers(-128, 128, 3, dtype=np.int8))
    for ggml_type, rows, cols in [
        (GGMLType.Q8_0, 4, 64), (GGMLType.Q4_0, 3, 96), (GGMLType.Q4_K, 2, 256), (GGMLType.Q6_K, 5, 512),
        (GGMLType.IQ4_NL, 1, 32),
    ]:
        block, type_size = GGML_QUANT_SIZES[ggml_type]
        data = rng.integers(0, 256, (rows, cols // block * type_size), dtype=np.uint8)
        writer.add_tensor(f"blocks.{ggml_type.name.lower()}", data, ggml_type)
    writer.add_tensor("last.f32", rng.standard_normal((2, 10)).astype(np.float32))
    writer.write()


def write_keys(path: Path) -> None:
    """``general.alignment = 64`` and split keys among the others (gguf-py's writer: llmcore's drops split keys)."""
    import gguf

    rng = np.random.default_rng(1718)
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_uint16("split.no", 0)
    writer.add_custom_alignment(64)
    writer.add_uint16("split.count", 0)
    writer.add_string("general.name", "keys")
    writer.add_int32("split.tensors.count", 9)
    writer.add_array("test.array", [1, 2, 3])
    for index in range(9):
        writer.add_tensor(f"t{index}", rng.standard_normal(3 + 5 * index).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def run(tool: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)


def make_case(tool: str, source: Path, args: list[str], tmp: Path) -> dict:
    case: dict = {"input_sha256": sha256(source), "args": args}
    plan = run(tool, [*args, "--dry-run", str(source), "out"], tmp)
    case["plan"] = [line for line in plan.stdout.splitlines() if line.startswith(("n_split", "split "))]
    done = run(tool, [*args, str(source), "out"], tmp)
    if done.returncode:
        case["error"] = (done.stdout + done.stderr).strip().splitlines()[-1]
        return case
    files = sorted(tmp.glob("out-*.gguf"))
    case["files"] = {path.name: sha256(path) for path in files}
    merged = run(tool, ["--merge", files[0].name, "merged.gguf"], tmp)
    if merged.returncode:
        case["merge_error"] = (merged.stdout + merged.stderr).strip().splitlines()[-1]
    else:
        case["merged_sha256"] = sha256(tmp / "merged.gguf")
    return case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_gguf_split", help="llama.cpp's llama-gguf-split binary")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_mixed(OUT_DIR / "mixed.gguf")
    write_keys(OUT_DIR / "keys.gguf")
    goldens = {}
    for name, (source, case_args) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            goldens[name] = {"input": source, **make_case(args.llama_gguf_split, input_path(source), case_args, Path(tmp))}
        print(name, goldens[name].get("error") or f"{len(goldens[name]['files'])} files", file=sys.stderr)
    (OUT_DIR / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
