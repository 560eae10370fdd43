"""Make the adapter goldens of tests/test_adapters.py: a tiny random llama, LoRA adapters in
llama.cpp's GGUF adapter format (as convert_lora_to_gguf.py writes them), control vectors in its
``direction.N`` format, and the logits llama.cpp 0.3.36 computes with them applied.

    PYTHONPATH=/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py \\
        /work/venv-oracle/bin/python scripts/make_adapter_goldens.py

Writes tests/fixtures/adapters/: ``base.gguf`` (4 layers), ``lora_attn.gguf`` (F32, rank 4,
alpha 8: attn_q, attn_v, the token embedding and the output head), ``lora_ffn.gguf`` (F16, rank 2,
no alpha: attn_k, attn_output and the FFN: the two adapters touch different weights, so that
llama.cpp's unordered map of adapters cannot order their sums), ``lora_phi3.gguf`` (for
tests/fixtures/arch/phi3.gguf: the fused attn_qkv and gate-up ffn_up), ``cvec_a.gguf``,
``cvec_b.gguf`` and ``goldens.npz`` (``tokens`` and one float32 [n, n_vocab] array per case;
``completion*``: the bytes llama-completion prints for 24 greedy tokens with COMPLETIONS' flags).
The adapters are set through llama.h (llama_adapter_lora_init, llama_set_adapters_lora); a control
vector's data is summed as common_control_vector_load sums it and set by llama_set_adapter_cvec.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_arch_goldens import TOKENS, TinyModel, llama  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "adapters"
PHI3 = ROOT / "tests" / "fixtures" / "arch" / "phi3.gguf"
N_LAYER = 4
LLAMA_COMPLETION = Path("/tmp/lcpp-build/bin/llama-completion")
#: the greedy completion of tests/test_adapters.py, with llama.cpp's own loading of the files (common's)
COMPLETION_PROMPT = "hello world"
COMPLETIONS = {
    "": ["--lora-scaled", "lora_attn.gguf:0.5", "--lora", "lora_ffn.gguf", "--control-vector-scaled",
         "cvec_a.gguf:2,cvec_b.gguf:-1", "--control-vector-layer-range", "2", "3"],
    # what tests/test_adapters.py's server serves as its adapters are swapped between requests
    "_attn_1": ["--lora", "lora_attn.gguf"],
    "_ffn_1": ["--lora", "lora_ffn.gguf"],
    "_attn_0.5": ["--lora-scaled", "lora_attn.gguf:0.5"],
}


def completion(model: Path, flags: list[str]) -> bytes:
    """llama-completion's output for 24 greedy tokens of COMPLETION_PROMPT (then its two newlines)."""
    return subprocess.run(
        [str(LLAMA_COMPLETION), "-m", str(model), *flags, "-p", COMPLETION_PROMPT, "-n", "24", "--temp", "0",
         "-no-cnv", "-c", "128", "--no-display-prompt", "--ignore-eos"],
        cwd=OUT, capture_output=True, check=True).stdout


def write_lora(path: Path, arch: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float,
               dtype: type = np.float32) -> None:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for name, (a, b) in pairs.items():
        writer.add_tensor(f"{name}.lora_a", a.astype(dtype))
        writer.add_tensor(f"{name}.lora_b", b.astype(dtype))
    _finish(writer)


def write_cvec(path: Path, directions: dict[int, np.ndarray]) -> None:
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_int32("controlvector.layer_count", len(directions))
    for il, direction in directions.items():
        writer.add_tensor(f"direction.{il}", direction.astype(np.float32))
    _finish(writer)


def _finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def pair(rng: np.random.Generator, n_out: int, n_in: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A [rank, in] and B [out, rank]: B A of the order of the weight it adapts."""
    return rng.normal(0, 1 / np.sqrt(n_in), (rank, n_in)), rng.normal(0, 0.5 / np.sqrt(rank), (n_out, rank))


def cvec_data(files: list[tuple[Path, float]], n_embd: int) -> np.ndarray:
    """common_control_vector_load: n_embd values per layer from layer 1, scaled and summed in float32."""
    data = np.zeros(0, np.float32)
    for path, strength in files:
        reader = gguf.GGUFReader(str(path))
        one = np.zeros(0, np.float32)
        for tensor in reader.tensors:
            il = int(tensor.name.split(".")[1])
            if one.size < n_embd * il:
                one = np.concatenate([one, np.zeros(n_embd * il - one.size, np.float32)])
            one[n_embd * (il - 1):n_embd * il] += np.asarray(tensor.data, np.float32) * np.float32(strength)
        if data.size < one.size:
            data = np.concatenate([data, np.zeros(one.size - data.size, np.float32)])
        data[:one.size] += one
    return data


def logits(model: Path, loras: list[tuple[Path, float]], cvec: tuple[list[tuple[Path, float]], int, int] | None = None,
           n_embd: int = 64) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), logits_all=True, n_ctx=128, verbose=False)
    adapters = [llama_cpp.llama_adapter_lora_init(llm._model.model, str(path).encode()) for path, _ in loras]
    if loras:
        assert all(adapters), "llama.cpp refused an adapter"
        array = (llama_cpp.llama_adapter_lora_p_ctypes * len(adapters))(*adapters)
        scales = (ctypes.c_float * len(loras))(*[scale for _, scale in loras])
        assert llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, array, len(adapters), scales) == 0
    if cvec is not None:
        files, start, end = cvec
        data = cvec_data(files, n_embd)
        pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        assert llama_cpp.llama_set_adapter_cvec(llm._ctx.ctx, pointer, data.size, n_embd, start, end) == 0
    llm.eval(TOKENS)
    out = np.array(llm.scores[: len(TOKENS)], dtype=np.float32)
    llm.close()
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    model = TinyModel("llama", seed=2100, n_layer=N_LAYER)
    llama(model)
    base = OUT / "base.gguf"
    model.write(base)

    rng = np.random.default_rng(2101)
    e, q, kv, ff, v = model.n_embd, model.q_width, model.kv_width, model.n_ff, 512
    attn = {"token_embd.weight": (rng.normal(0, 0.5, (v, 4)), rng.normal(0, 0.5, (e, 4))),
            "output.weight": pair(rng, v, e, 4)}
    ffn = {}
    for il in range(N_LAYER):
        attn[f"blk.{il}.attn_q.weight"] = pair(rng, q, e, 4)
        attn[f"blk.{il}.attn_v.weight"] = pair(rng, kv, e, 4)
        ffn[f"blk.{il}.attn_k.weight"] = pair(rng, kv, e, 2)
        ffn[f"blk.{il}.attn_output.weight"] = pair(rng, e, q, 2)
        ffn[f"blk.{il}.ffn_gate.weight"] = pair(rng, ff, e, 2)
        ffn[f"blk.{il}.ffn_up.weight"] = pair(rng, ff, e, 2)
        ffn[f"blk.{il}.ffn_down.weight"] = pair(rng, e, ff, 2)
    write_lora(OUT / "lora_attn.gguf", "llama", attn, alpha=8.0)
    write_lora(OUT / "lora_ffn.gguf", "llama", ffn, alpha=0.0, dtype=np.float16)

    phi3 = gguf.GGUFReader(str(PHI3))
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in phi3.tensors}
    phi3_pairs = {name: pair(rng, shapes[name][0], shapes[name][1], 4)
                  for name in ("blk.0.attn_qkv.weight", "blk.1.attn_qkv.weight", "blk.0.ffn_up.weight")}
    write_lora(OUT / "lora_phi3.gguf", "phi3", phi3_pairs, alpha=4.0)

    write_cvec(OUT / "cvec_a.gguf", {il: rng.normal(0, 0.5, e) for il in range(1, N_LAYER)})
    write_cvec(OUT / "cvec_b.gguf", {il: rng.normal(0, 0.5, e) for il in (2, 3)})

    la, lf, lp = OUT / "lora_attn.gguf", OUT / "lora_ffn.gguf", OUT / "lora_phi3.gguf"
    ca, cb = OUT / "cvec_a.gguf", OUT / "cvec_b.gguf"
    cases = {
        "plain": logits(base, []),
        "attn_1": logits(base, [(la, 1.0)]),
        "attn_0.5": logits(base, [(la, 0.5)]),
        "ffn_1": logits(base, [(lf, 1.0)]),
        "attn_1_ffn_-0.7": logits(base, [(la, 1.0), (lf, -0.7)]),
        "cvec_a": logits(base, [], ([(ca, 1.0)], 1, N_LAYER)),
        "cvec_a2_b-1_layers_2_3": logits(base, [], ([(ca, 2.0), (cb, -1.0)], 2, 3)),
        "attn_1_cvec_a": logits(base, [(la, 1.0)], ([(ca, 1.0)], 1, N_LAYER)),
        "phi3_plain": logits(PHI3, []),
        "phi3_lora_0.8": logits(PHI3, [(lp, 0.8)]),
    }
    completions = {f"completion{suffix}": np.frombuffer(completion(base, flags), np.uint8)
                   for suffix, flags in COMPLETIONS.items()}
    np.savez_compressed(OUT / "goldens.npz", tokens=np.array(TOKENS, np.int32), **cases, **completions)
    for name, value in cases.items():
        change = np.abs(value - cases["phi3_plain" if name.startswith("phi3") else "plain"]).max()
        print(f"{name}: logits std {value.std():.2f}, largest change from plain {change:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
