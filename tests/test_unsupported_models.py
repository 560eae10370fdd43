"""A model that needs an architecture feature llmcore lacks is refused with that feature's name,
not with whatever a dense builder then misses (``tensor blk.0.ffn_gate.weight is missing``); the
Mixtral layout itself loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmcore import LLM
from llmcore.cli import main
from llmcore.errors import ModelError
from llmcore.gguf import GGUFReader, GGUFWriter

DENSE = Path(__file__).parent / "fixtures" / "arch" / "llama.gguf"
N_EXPERT = 4


def write_mixtral_style(path: Path, *, expert_count: bool = True, arch: str = "llama") -> Path:
    """The tiny llama with Mixtral's feed-forward layers: a router and the experts' gate, up and
    down matrices stacked in one tensor each (llama.cpp's ``ffn_*_exps``), every expert a copy of
    the dense FFN; ``arch`` renames the architecture (its metadata keys with it)."""
    rng = np.random.default_rng(0)
    with GGUFReader(DENSE) as dense:
        writer = GGUFWriter(path)
        for key, value in dense.metadata.items():
            if key == "general.architecture":
                value = arch
            writer.add_metadata(key.replace("llama.", f"{arch}.", 1), value, dense.metadata_types[key])
        if expert_count:
            writer.add_metadata(f"{arch}.expert_count", N_EXPERT)
            writer.add_metadata(f"{arch}.expert_used_count", 2)
        for name, info in dense.tensors.items():
            layer, _, kind = name.rpartition(".ffn_")
            if kind in ("gate.weight", "up.weight", "down.weight"):
                stacked = np.stack([dense.raw(name)] * N_EXPERT)
                writer.add_tensor(f"{layer}.ffn_{kind.replace('.weight', '_exps.weight')}", stacked, info.type)
                if kind == "gate.weight":
                    router = rng.normal(size=(N_EXPERT, stacked.shape[-1])).astype(np.float32)
                    writer.add_tensor(f"{layer}.ffn_gate_inp.weight", router)
            else:
                writer.add_tensor(name, dense.raw(name), info.type)
        writer.write()
    return path


@pytest.mark.parametrize(("expert_count", "evidence"), [
    (True, f"qwen2.expert_count = {N_EXPERT}"),
    (False, "tensor blk.0.ffn_gate_exps.weight"),  # the tensors alone say so too
])
def test_experts_in_a_family_without_them_are_named_as_not_supported(tmp_path, expert_count, evidence):
    path = write_mixtral_style(tmp_path / "moe.gguf", expert_count=expert_count, arch="qwen2")
    with pytest.raises(ModelError) as refused:
        LLM(path, backend="reference", n_ctx=64)
    assert str(refused.value) == f"{path}: mixture-of-experts layers are not supported for qwen2 yet ({evidence})"


def test_the_cli_names_it_in_one_line(tmp_path, capsys):
    path = write_mixtral_style(tmp_path / "moe.gguf", arch="qwen2")
    assert main(["plan", "-m", str(path), "--backend", "reference"]) == 2
    assert capsys.readouterr().err == (f"llmcore plan: error: {path}: mixture-of-experts layers are not supported "
                                       f"for qwen2 yet (qwen2.expert_count = {N_EXPERT})\n")


@pytest.mark.parametrize("backend", ["reference", "cpu_simd"])
def test_mixtral_layout_of_copies_of_the_dense_ffn_gives_the_dense_logits(tmp_path, backend):
    """Whichever two experts a token is routed to, they are the dense FFN and their normalised
    weights sum to one: the dense model's logits, up to the rounding of the weighted sum."""
    tokens = [1, 300, 45, 200, 511, 17]
    dense = LLM(DENSE, backend=backend, n_ctx=64).logits(tokens)
    moe = LLM(write_mixtral_style(tmp_path / "moe.gguf"), backend=backend, n_ctx=64)
    assert moe.model.hparams.n_expert_used == 2
    np.testing.assert_allclose(moe.logits(tokens), dense, atol=1e-4 * dense.std())
