"""LoRA adapters and control vectors against llama.cpp 0.3.36: a tiny random llama with tiny random
adapters (tests/fixtures/adapters, made by scripts/make_adapter_goldens.py), the logits llama.cpp
computes with each applied at a scale, in one batch. Weights are float32 (one adapter float16), so
the bound is test_architectures.py's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmcore import LLM
from llmcore.errors import LLMCoreError

FIXTURES = Path(__file__).parent / "fixtures" / "adapters"
BASE = FIXTURES / "base.gguf"
PHI3 = Path(__file__).parent / "fixtures" / "arch" / "phi3.gguf"
GOLD = np.load(FIXTURES / "goldens.npz")
TOKENS = GOLD["tokens"].tolist()
MAX_REL_ERROR = 2e-3
# lora_ffn.gguf is F16: activations entering it are rounded to f16 as ggml rounds them, and on the
# reference backend (float32 sums in numpy's order) a one-ulp difference flips some of those
# roundings, which its rank-2 products carry through four layers (~2.3e-3 of the std)
F16_ADAPTER_REL_ERROR = 4e-3
LA, LF, CA, CB = (str(FIXTURES / f) for f in ("lora_attn.gguf", "lora_ffn.gguf", "cvec_a.gguf", "cvec_b.gguf"))

CASES = {
    "attn_1": dict(lora=[LA]),
    "attn_0.5": dict(lora=[(LA, 0.5)]),
    "ffn_1": dict(lora=[LF]),
    "attn_1_ffn_-0.7": dict(lora=[LA, (LF, -0.7)]),
    "cvec_a": dict(control_vectors=[CA]),
    "cvec_a2_b-1_layers_2_3": dict(control_vectors=[(CA, 2.0), (CB, -1.0)], control_vector_layer_range=(2, 3)),
    "attn_1_cvec_a": dict(lora=[LA], control_vectors=[CA]),
}


def _check(logits: np.ndarray, case: str, exact: bool = False) -> None:
    """cpu_simd computes in ggml's orders, so its logits are llama.cpp's bit for bit (``exact``)."""
    expected = GOLD[case]
    error = float(np.abs(logits - expected).max())
    print(f"{case}: max abs error {error:.2e}")
    bound = F16_ADAPTER_REL_ERROR if "ffn" in case else MAX_REL_ERROR
    assert error <= (0.0 if exact else bound * expected.std()), case
    np.testing.assert_array_equal(logits.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.parametrize("backend", ["reference", "cpu_simd"])
@pytest.mark.parametrize("case", list(CASES))
def test_adapters_give_llama_cpp_logits(case, backend):
    llm = LLM(BASE, backend=backend, n_ctx=128, **CASES[case])
    _check(llm.logits(TOKENS), case, exact=backend == "cpu_simd")


@pytest.mark.parametrize("backend", ["reference", "cpu_simd"])
def test_lora_on_fused_weights(backend):
    """A fused QKV and gate-up matrix: B's rows are split as the weight's are."""
    llm = LLM(PHI3, backend=backend, n_ctx=128, lora=[(FIXTURES / "lora_phi3.gguf", 0.8)])
    _check(llm.logits(TOKENS), "phi3_lora_0.8", exact=backend == "cpu_simd")


def test_cli_flags_give_llama_completion_tokens(monkeypatch):
    """llama.cpp's flags (--lora, --lora-scaled, --control-vector-scaled with two files,
    --control-vector-layer-range) parsed by `llmcore run`'s parser and loaded as load_llm loads
    them: the greedy tokens of llama-completion with the same flags, byte for byte."""
    from llmcore.cli import build_parser
    from llmcore.cli._common import load_llm

    monkeypatch.chdir(FIXTURES)
    args = build_parser("run").parse_args([
        "run", "-m", "base.gguf", "--lora-scaled", "lora_attn.gguf:0.5", "--lora", "lora_ffn.gguf",
        "--control-vector-scaled", "cvec_a.gguf:2,cvec_b.gguf:-1", "--control-vector-layer-range", "2", "3",
        "-c", "128", "--backend", "cpu_simd"])
    assert args.lora == [("lora_attn.gguf", 0.5), ("lora_ffn.gguf", 1.0)]
    llm = load_llm(args)
    prompt = llm.tokenize("hello world", add_special=True)
    tokens = list(llm.generate_tokens(prompt, llm.sampler(temperature=0), 24, ignore_eos=True))
    text = b"".join(llm.tokenizer.token_to_piece(t, special=False) for t in tokens)
    assert text + b"\n\n" == GOLD["completion"].tobytes()  # llama-completion ends its output with two newlines


def test_scales_change_without_reloading():
    """One context, its adapter's scale changed between evaluations (what the server's hot swap
    does): each evaluation gives llama.cpp's logits for the scale set."""
    llm = LLM(BASE, backend="cpu_simd", n_ctx=128, lora=[(LA, 0.0), LF])
    assert llm.lora_scales == [0.0, 1.0]
    _check(llm.logits(TOKENS), "ffn_1")
    llm.set_lora_scales([0.5, 0.0])
    _check(llm.logits(TOKENS), "attn_0.5")
    llm.set_lora_scales([0.0, 0.0])
    _check(llm.logits(TOKENS), "plain")


@pytest.mark.parametrize("bad, message", [
    (dict(lora=[BASE]), "expected general.type = 'adapter'"),
    (dict(lora=[FIXTURES / "lora_phi3.gguf"]), "model arch and LoRA arch mismatch"),
    (dict(lora=[FIXTURES / "missing.gguf"]), "no such file"),
    (dict(control_vectors=[LA]), "is not named direction.<layer>"),
])
def test_bad_adapters_are_refused_in_one_line(bad, message):
    with pytest.raises(LLMCoreError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")) as error:
        LLM(BASE, backend="reference", n_ctx=32, **bad)
    assert "\n" not in str(error.value)


def test_server_swaps_adapters_between_requests():
    """`llmcore serve --lora A --lora-scaled B:0`: each request's greedy tokens are llama-completion's
    with the adapters at the scales then in force: the server's own (GET /lora-adapters), those
    POST /lora-adapters sets, and a request's own ``lora`` field."""
    import httpx
    from test_server import ServerProcess

    server = ServerProcess(BASE, "--lora", LA, "--lora-scaled", f"{LF}:0", "-c", "128", "--backend", "cpu_simd")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            from llmcore.tokenizer import Tokenizer

            tokenizer = Tokenizer.from_gguf(BASE)

            def completion(**fields) -> bytes:
                """The reply's tokens as llama-completion prints them (a control token as nothing)."""
                reply = http.post("/completion", json={"prompt": "hello world", "n_predict": 24, "temperature": 0,
                                                       "ignore_eos": True, **fields})
                assert reply.status_code == 200, reply.text
                return b"".join(tokenizer.token_to_piece(t, special=False) for t in reply.json()["tokens"]) + b"\n\n"

            adapters = http.get("/lora-adapters").json()
            assert [(a["id"], Path(a["path"]).name, a["scale"]) for a in adapters] == [
                (0, "lora_attn.gguf", 1.0), (1, "lora_ffn.gguf", 0.0)]
            assert completion() == GOLD["completion_attn_1"].tobytes()
            assert http.post("/lora-adapters", json=[{"id": 1, "scale": 1.0}]).json() == {"success": True}
            assert [a["scale"] for a in http.get("/lora-adapters").json()] == [0.0, 1.0]
            assert completion() == GOLD["completion_ffn_1"].tobytes()
            assert completion(lora=[{"id": 0, "scale": 0.5}]) == GOLD["completion_attn_0.5"].tobytes()
            assert completion() == GOLD["completion_ffn_1"].tobytes()
            bad = http.post("/completion", json={"prompt": "hi", "lora": [{"id": 7, "scale": 1}]})
            assert bad.status_code == 400 and "LoRA adapter id 7" in bad.text
    finally:
        server.stop()
