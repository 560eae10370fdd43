"""Make the architecture goldens of tests/test_architectures.py: for each architecture, a tiny GGUF
with random float32 weights and the logits llama.cpp computes for it on a fixed token list.

    /work/venv-oracle/bin/python scripts/make_arch_goldens.py [ARCH ...]

Needs llama-cpp-python (the oracle) and the ``gguf`` package. Writes, per architecture,
``tests/fixtures/arch/<arch>.gguf`` and ``<arch>.logits.npz`` (``tokens`` int32 [n],
``logits`` float32 [n, n_vocab]: llama.cpp's logits after each token).

Every model has the same shape: a few layers of width 64, 4 query heads sharing 2 KV heads, and the
first 512 tokens of llama.cpp's SentencePiece test vocabulary (the tokenizer plays no part: the
tests feed token ids). Only what an architecture needs is added on top, so each file names exactly
the metadata and tensors llama.cpp requires for it (see src/models/<arch>.cpp there).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "arch"
VOCAB = Path("/work/shared/fixtures/vocab/ggml-vocab-llama-spm.gguf")
N_VOCAB = 512
TOKENS = [1, 300, 45, 200, 511, 17, 99, 260, 400, 3, 128, 256, 301, 302, 77, 5]


class TinyModel:
    """A random model being written: metadata under the architecture's prefix and tensors by their
    GGUF names, with weights scaled so that activations stay of order one."""

    def __init__(self, arch: str, seed: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4,
                 n_head_kv: int = 2, head_dim: int = 16, n_ff: int = 128) -> None:
        self.arch = arch
        self.name = f"tiny-random-{arch}"
        self.rng = np.random.default_rng(seed)
        self.n_layer, self.n_embd, self.n_head, self.n_head_kv = n_layer, n_embd, n_head, n_head_kv
        self.head_dim, self.n_ff = head_dim, n_ff
        self.metadata: dict[str, object] = {
            "context_length": 2048,
            "embedding_length": n_embd,
            "block_count": n_layer,
            "feed_forward_length": n_ff,
            "attention.head_count": n_head,
            "attention.head_count_kv": n_head_kv,
            "rope.freq_base": 10000.0,
            "rope.dimension_count": head_dim,
        }
        self.global_metadata: dict[str, object] = {}  # keys written as they are, without the prefix
        self.tensors: dict[str, np.ndarray] = {}
        self.quantized: dict[str, gguf.GGMLQuantizationType] = {}  # tensors written in that type

    @property
    def q_width(self) -> int:
        return self.n_head * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.n_head_kv * self.head_dim

    # -- tensors --------------------------------------------------------------------------------

    def matrix(self, name: str, n_out: int, n_in: int, gain: float = 1.0) -> None:
        self.tensors[name] = self.rng.normal(0, gain / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)

    def norm(self, name: str, *shape: int) -> None:
        self.tensors[name] = (1 + 0.1 * self.rng.normal(size=shape)).astype(np.float32)

    def bias(self, name: str, *shape: int) -> None:
        self.tensors[name] = (0.1 * self.rng.normal(size=shape)).astype(np.float32)

    # -- the usual blocks -----------------------------------------------------------------------

    def embedding(self, tied: bool = False) -> None:
        self.tensors["token_embd.weight"] = self.rng.normal(0, 1, (N_VOCAB, self.n_embd)).astype(np.float32)
        if not tied:
            # logits of a few units: top-1 margins well above rounding noise
            self.matrix("output.weight", N_VOCAB, self.n_embd, gain=4.0)

    def attention(self, il: int, qkv_bias: bool = False, out_bias: bool = False, fused: bool = False) -> None:
        """q, k, v and output projections; ``fused``: q, k and v as one ``attn_qkv`` matrix."""
        p = f"blk.{il}"
        self.matrix(f"{p}.attn_output.weight", self.n_embd, self.q_width)
        if out_bias:
            self.bias(f"{p}.attn_output.bias", self.n_embd)
        if fused:
            self.matrix(f"{p}.attn_qkv.weight", self.q_width + 2 * self.kv_width, self.n_embd)
            if qkv_bias:
                self.bias(f"{p}.attn_qkv.bias", self.q_width + 2 * self.kv_width)
            return
        self.matrix(f"{p}.attn_q.weight", self.q_width, self.n_embd)
        self.matrix(f"{p}.attn_k.weight", self.kv_width, self.n_embd)
        self.matrix(f"{p}.attn_v.weight", self.kv_width, self.n_embd)
        if qkv_bias:
            self.bias(f"{p}.attn_q.bias", self.q_width)
            self.bias(f"{p}.attn_k.bias", self.kv_width)
            self.bias(f"{p}.attn_v.bias", self.kv_width)

    def ffn(self, il: int, gated: bool = True, biases: bool = False, fused: bool = False) -> None:
        """up, gate (when ``gated``) and down projections; ``fused``: gate and up as one ``ffn_up``
        of twice the rows, gate first."""
        p = f"blk.{il}"
        if fused:
            self.matrix(f"{p}.ffn_up.weight", 2 * self.n_ff, self.n_embd)
            self.matrix(f"{p}.ffn_down.weight", self.n_embd, self.n_ff)
            return
        names = ("ffn_gate", "ffn_up") if gated else ("ffn_up",)
        for name in names:
            self.matrix(f"{p}.{name}.weight", self.n_ff, self.n_embd)
            if biases:
                self.bias(f"{p}.{name}.bias", self.n_ff)
        self.matrix(f"{p}.ffn_down.weight", self.n_embd, self.n_ff)
        if biases:
            self.bias(f"{p}.ffn_down.bias", self.n_embd)

    def experts(self, il: int, n_expert: int, n_used: int, n_ff: int, zero_router_rows: int = 0) -> None:
        """A mixture of ``n_expert`` SwiGLU experts of width ``n_ff``, ``n_used`` per token: the
        router ``ffn_gate_inp`` and the stacked ``ffn_{gate,up,down}_exps``. The router's last
        ``zero_router_rows`` rows are zeros: those experts score exactly 0 for every token in any
        engine, so their ties are decided by llama.cpp's order of equal values (ggml_argsort's
        std::sort), and the tie order is checked."""
        p = f"blk.{il}"
        self.metadata.update({"expert_count": n_expert, "expert_used_count": n_used})
        self.matrix(f"{p}.ffn_gate_inp.weight", n_expert, self.n_embd)
        self.tensors[f"{p}.ffn_gate_inp.weight"][n_expert - zero_router_rows:] = 0
        for name, n_out, n_in in (("ffn_gate_exps", n_ff, self.n_embd), ("ffn_up_exps", n_ff, self.n_embd),
                                  ("ffn_down_exps", self.n_embd, n_ff)):
            self.tensors[f"{p}.{name}.weight"] = self.rng.normal(0, 1 / np.sqrt(n_in), (n_expert, n_out, n_in)).astype(np.float32)

    def norms(self, names: list[str], biases: bool = False) -> None:
        """``names`` of per-layer norms ("attn_norm", ...) plus the output norm."""
        for il in range(self.n_layer):
            for name in names:
                self.norm(f"blk.{il}.{name}.weight", self.n_embd)
                if biases:
                    self.bias(f"blk.{il}.{name}.bias", self.n_embd)
        self.norm("output_norm.weight", self.n_embd)
        if biases:
            self.bias("output_norm.bias", self.n_embd)

    # -- file -----------------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        writer = gguf.GGUFWriter(str(path), self.arch)
        writer.add_name(self.name)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        for key, value in self.metadata.items():
            _add_value(writer, f"{self.arch}.{key}", value)
        for key, value in self.global_metadata.items():
            _add_value(writer, key, value)
        _add_vocab(writer)
        for name, data in self.tensors.items():
            if name in self.quantized:
                qtype = self.quantized[name]
                writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
            else:
                writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    def write_quantized(self, path: Path, quantize: list[str], ftype: str = "Q4_K_M") -> None:
        """Write the model quantized to ``ftype`` at ``path``: its matrices in F16 (as converted models
        hold them) to a temporary file that the command ``quantize`` (llama-quantize or ``llmcore
        quantize``, given the input, the output and the type) quantizes."""
        for name, tensor in self.tensors.items():
            if tensor.ndim >= 2:
                self.tensors[name] = tensor.astype(np.float16)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            f16 = Path(tmp) / "f16.gguf"
            self.write(f16)
            subprocess.run([*quantize, str(f16), str(path), ftype], check=True, capture_output=True)


def _add_value(writer: gguf.GGUFWriter, key: str, value: object) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, (list, tuple)):
        writer.add_array(key, list(value))
    else:
        writer.add_string(key, str(value))


def _add_vocab(writer: gguf.GGUFWriter) -> None:
    """The first ``N_VOCAB`` tokens of the SentencePiece test vocabulary: control tokens, the 256
    byte tokens and the first merges."""
    reader = gguf.GGUFReader(str(VOCAB))

    def array(key: str) -> list:
        return reader.fields[key].contents()[:N_VOCAB]

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(array("tokenizer.ggml.tokens"))
    writer.add_token_scores(array("tokenizer.ggml.scores"))
    writer.add_token_types(array("tokenizer.ggml.token_type"))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


# -- the architectures --------------------------------------------------------------------------

def rms_decoder(m: TinyModel, qkv_bias: bool = False, tied: bool = False) -> None:
    """Llama's layout: RMS pre-norms, separate q/k/v, gated FFN."""
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.embedding(tied=tied)
    m.norms(["attn_norm", "ffn_norm"])
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=qkv_bias)
        m.ffn(il)


def llama(m: TinyModel) -> None:
    rms_decoder(m)


def llama3_1(m: TinyModel) -> None:
    """Llama with Llama 3.1's per-pair rope frequency factors (``rope_freqs.weight``)."""
    rms_decoder(m)
    m.tensors["rope_freqs.weight"] = np.geomspace(1.0, 8.0, m.head_dim // 2).astype(np.float32)


def qwen2(m: TinyModel) -> None:
    rms_decoder(m, qkv_bias=True)


def qwen3(m: TinyModel) -> None:
    rms_decoder(m, tied=True)
    for il in range(m.n_layer):
        m.norm(f"blk.{il}.attn_q_norm.weight", m.head_dim)
        m.norm(f"blk.{il}.attn_k_norm.weight", m.head_dim)


def internlm2(m: TinyModel) -> None:
    rms_decoder(m)


def xverse(m: TinyModel) -> None:
    rms_decoder(m)


def ernie4_5(m: TinyModel) -> None:
    rms_decoder(m, tied=True)


def seed_oss(m: TinyModel) -> None:
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.embedding()
    m.norms(["attn_norm", "post_attention_norm"])
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True)
        m.ffn(il)


def exaone(m: TinyModel) -> None:
    rms_decoder(m)


def smollm3(m: TinyModel) -> None:
    rms_decoder(m, tied=True)  # four layers: the fourth has no rotary embedding


def gemma(m: TinyModel) -> None:
    # gemma's head width is its own (key_length), not n_embd / n_head
    m.metadata["attention.key_length"] = m.metadata["attention.value_length"] = m.head_dim
    rms_decoder(m, tied=True)


#: shorter than TOKENS, so that the sliding-window mask hides keys
GEMMA_WINDOW = 5


def sandwich_decoder(m: TinyModel, **metadata: object) -> None:
    """Gemma 2/3: RMSNorm before and after attention and FFN, tied output, its own head width,
    sliding windows of ``GEMMA_WINDOW`` tokens."""
    m.metadata["attention.key_length"] = m.metadata["attention.value_length"] = m.head_dim
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.metadata["attention.sliding_window"] = GEMMA_WINDOW
    m.metadata.update(metadata)
    m.embedding(tied=True)
    m.norms(["attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"])
    for il in range(m.n_layer):
        m.attention(il)
        m.ffn(il)


def gemma2(m: TinyModel) -> None:
    # caps low enough that tanh bends the scores (about 1) and logits (std 4 to 8)
    sandwich_decoder(m, attn_logit_softcapping=1.5, final_logit_softcapping=10.0)


def gemma3(m: TinyModel) -> None:
    # six layers: five windowed ones (rope base 10000), then a global one (base and linear scaling)
    sandwich_decoder(m, **{"rope.freq_base": 1e6, "rope.scaling.type": "linear", "rope.scaling.factor": 8.0})
    for il in range(m.n_layer):
        m.norm(f"blk.{il}.attn_q_norm.weight", m.head_dim)
        m.norm(f"blk.{il}.attn_k_norm.weight", m.head_dim)


def starcoder2(m: TinyModel) -> None:
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"], biases=True)
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, out_bias=True)
        m.ffn(il, gated=False, biases=True)


def layer_norm_decoder(m: TinyModel) -> None:
    """LayerNorm (weight and bias) pre-norms around llama's attention and gated FFN."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"], biases=True)
    for il in range(m.n_layer):
        m.attention(il)
        m.ffn(il)


def orion(m: TinyModel) -> None:
    layer_norm_decoder(m)


def stablelm(m: TinyModel) -> None:
    m.metadata["rope.dimension_count"] = m.head_dim // 4  # StableLM rotates a quarter of each head
    layer_norm_decoder(m)
    for il in range(m.n_layer):  # StableLM 2 12B's per-head LayerNorm of queries and keys
        m.norm(f"blk.{il}.attn_q_norm.weight", m.n_head, m.head_dim)
        m.norm(f"blk.{il}.attn_k_norm.weight", m.n_head_kv, m.head_dim)


def phi2(m: TinyModel) -> None:
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.metadata["rope.dimension_count"] = m.head_dim // 2  # Phi-2 rotates 32 of its 80 head dims
    m.embedding()
    m.bias("output.bias", N_VOCAB)
    m.norms(["attn_norm"], biases=True)
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, out_bias=True)
        m.ffn(il, gated=False, biases=True)


def olmo2(m: TinyModel) -> None:
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.embedding()
    m.norms(["post_attention_norm", "post_ffw_norm"])
    for il in range(m.n_layer):
        m.attention(il)
        m.ffn(il)
        m.norm(f"blk.{il}.attn_q_norm.weight", m.q_width)
        m.norm(f"blk.{il}.attn_k_norm.weight", m.kv_width)


def phi2_fused(m: TinyModel) -> None:
    """Phi-2 as most converted files hold it: q, k and v in one ``attn_qkv``."""
    phi2(m)
    for il in range(m.n_layer):
        for name in ("attn_q", "attn_k", "attn_v"):
            del m.tensors[f"blk.{il}.{name}.weight"], m.tensors[f"blk.{il}.{name}.bias"]
        m.matrix(f"blk.{il}.attn_qkv.weight", m.q_width + 2 * m.kv_width, m.n_embd)
        m.bias(f"blk.{il}.attn_qkv.bias", m.q_width + 2 * m.kv_width)


def qwen(m: TinyModel) -> None:
    m.metadata["feed_forward_length"] = 2 * m.n_ff  # Qwen's ffn tensors are half its n_ff
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"])
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, fused=True)
        m.ffn(il)


def phi3(m: TinyModel) -> None:
    """Fused QKV and gate-up, and LongRoPE factors: the context (128) exceeds the original one
    (64), so llama.cpp picks the long factors."""
    m.name = "tiny-random-p3"  # llama.cpp's vocabulary looks up Phi-3's special tokens when the name says phi3
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-5
    m.metadata["rope.scaling.original_context_length"] = 64
    m.metadata["rope.scaling.attn_factor"] = 1.19
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"])
    for il in range(m.n_layer):
        m.attention(il, fused=True)
        m.ffn(il, fused=True)
    m.tensors["rope_factors_long.weight"] = np.geomspace(1.0, 16.0, m.head_dim // 2).astype(np.float32)
    m.tensors["rope_factors_short.weight"] = np.geomspace(1.0, 1.5, m.head_dim // 2).astype(np.float32)


def gpt_block(m: TinyModel, fused: bool = True) -> None:
    """GPT-2's layout: LayerNorms with biases, biased (fused) QKV and output, ungated biased FFN."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"], biases=True)
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, out_bias=True, fused=fused)
        m.ffn(il, gated=False, biases=True)


def gptneox(m: TinyModel) -> None:
    m.metadata["rope.dimension_count"] = m.head_dim // 4  # Pythia rotates a quarter of each head
    m.metadata["use_parallel_residual"] = True
    gpt_block(m)


def gptneox_sequential(m: TinyModel) -> None:
    m.metadata["rope.dimension_count"] = m.head_dim // 4
    m.metadata["use_parallel_residual"] = False
    gpt_block(m)


def codeshell(m: TinyModel) -> None:
    gpt_block(m)


def gpt2(m: TinyModel) -> None:
    """Learned absolute positions: one row per training position."""
    m.metadata["context_length"] = 256
    gpt_block(m)
    m.tensors["position_embd.weight"] = m.rng.normal(0, 1, (256, m.n_embd)).astype(np.float32)


def starcoder(m: TinyModel) -> None:
    gpt2(m)  # with one key/value head (multi-query attention), from its TinyModel arguments


def olmo(m: TinyModel) -> None:
    """Non-parametric LayerNorms (no norm tensors) and queries, keys, values clipped to [-1, 1]."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.metadata["attention.clamp_kqv"] = 1.0
    m.embedding()
    for il in range(m.n_layer):
        m.attention(il)
        m.ffn(il)


def command_r(m: TinyModel) -> None:
    """Parallel blocks on one LayerNorm (weight only), tied output, logits scaled."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.metadata["logit_scale"] = 0.5
    m.embedding(tied=True)
    m.norms(["attn_norm"])
    for il in range(m.n_layer):
        m.attention(il)
        m.ffn(il)


def mpt(m: TinyModel) -> None:
    """ALiBi from the file and clipped QKV."""
    m.metadata["attention.max_alibi_bias"] = 8.0
    m.metadata["attention.clamp_kqv"] = 1.5
    gpt_block(m)


def bloom(m: TinyModel) -> None:
    """ALiBi (bias 8, fixed) over 6 heads: slopes past the largest power of two, and the LayerNorm
    of the token embeddings."""
    gpt_block(m)
    m.norm("token_embd_norm.weight", m.n_embd)
    m.bias("token_embd_norm.bias", m.n_embd)


def refact(m: TinyModel) -> None:
    rms_decoder(m)  # multi-query (one KV head) from its TinyModel arguments; ALiBi fixed by llama.cpp


def baichuan(m: TinyModel) -> None:
    rms_decoder(m)  # 40 thin layers: llama.cpp's 13B, the ALiBi variant


def falcon(m: TinyModel) -> None:
    """Falcon-7B: one LayerNorm per block read by attention and FFN, fused QKV, multi-query."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.embedding()
    m.norms(["attn_norm"], biases=True)
    for il in range(m.n_layer):
        m.attention(il, fused=True)
        m.ffn(il, gated=False)


def falcon_40b(m: TinyModel) -> None:
    """Falcon-40B: attention reads its own LayerNorm (attn_norm_2)."""
    falcon(m)
    for il in range(m.n_layer):
        m.norm(f"blk.{il}.attn_norm_2.weight", m.n_embd)
        m.bias(f"blk.{il}.attn_norm_2.bias", m.n_embd)


def plamo(m: TinyModel) -> None:
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.embedding()
    m.norms(["attn_norm"])
    for il in range(m.n_layer):
        m.attention(il)
        m.ffn(il)


def chatglm(m: TinyModel) -> None:
    """Fused QKV (biased) and gate-up; rotary on half of each head."""
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-5
    m.metadata["rope.dimension_count"] = m.head_dim // 2
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"])
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True, fused=True)
        m.ffn(il, fused=True)


def glm4(m: TinyModel) -> None:
    """ChatGLM's block with post-attention and post-FFN norms; separate q, k, v here."""
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-5
    m.metadata["rope.dimension_count"] = m.head_dim // 2
    m.embedding()
    m.norms(["attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm"])
    for il in range(m.n_layer):
        m.attention(il, qkv_bias=True)
        m.ffn(il, fused=True)


def moe_decoder(m: TinyModel, n_expert: int, n_used: int, n_ff: int, zero_router_rows: int = 0) -> None:
    """Llama's layout with a mixture of experts of width ``n_ff`` as the FFN."""
    m.metadata["attention.layer_norm_rms_epsilon"] = 1e-6
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"])
    for il in range(m.n_layer):
        m.attention(il)
        m.experts(il, n_expert, n_used, n_ff, zero_router_rows)


def llama_moe(m: TinyModel) -> None:
    """Mixtral: 8 experts of the FFN's width, 2 per token; three experts tie at a score of 0
    (std::sort's insertion sort orders them)."""
    moe_decoder(m, n_expert=8, n_used=2, n_ff=m.n_ff, zero_router_rows=3)


def qwen2moe(m: TinyModel) -> None:
    """QKV biases, 8 experts with 4 per token, unnormalised weights, and the shared expert behind
    its sigmoid gate (a vector ``ffn_gate_inp_shexp``)."""
    m.metadata["expert_feed_forward_length"] = m.n_ff // 4
    m.metadata["expert_shared_feed_forward_length"] = m.n_ff
    moe_decoder(m, n_expert=8, n_used=4, n_ff=m.n_ff // 4)
    for il in range(m.n_layer):
        m.tensors[f"blk.{il}.ffn_gate_inp_shexp.weight"] = m.rng.normal(0, 1 / np.sqrt(m.n_embd), m.n_embd).astype(np.float32)
        m.ffn(il)
        for name in ("ffn_gate", "ffn_up", "ffn_down"):
            m.tensors[f"blk.{il}.{name}_shexp.weight"] = m.tensors.pop(f"blk.{il}.{name}.weight")
        m.bias(f"blk.{il}.attn_q.bias", m.q_width)
        m.bias(f"blk.{il}.attn_k.bias", m.kv_width)
        m.bias(f"blk.{il}.attn_v.bias", m.kv_width)


def qwen3moe(m: TinyModel) -> None:
    """Per-head QK norms, 20 experts (ggml's softmax takes 16 at a time: a tail of 4), 4 per token,
    normalised weights."""
    m.metadata["expert_feed_forward_length"] = m.n_ff // 8
    moe_decoder(m, n_expert=20, n_used=4, n_ff=m.n_ff // 8)
    for il in range(m.n_layer):
        m.norm(f"blk.{il}.attn_q_norm.weight", m.head_dim)
        m.norm(f"blk.{il}.attn_k_norm.weight", m.head_dim)


def olmoe(m: TinyModel) -> None:
    """Full-width QK norms, 32 experts of the FFN's width with 8 per token, unnormalised weights;
    half the experts tie at 0, so std::sort's introsort (more than 16 values) orders most tokens'
    last choices."""
    moe_decoder(m, n_expert=32, n_used=8, n_ff=m.n_ff, zero_router_rows=16)
    for il in range(m.n_layer):
        m.norm(f"blk.{il}.attn_q_norm.weight", m.q_width)
        m.norm(f"blk.{il}.attn_k_norm.weight", m.kv_width)


def latent_attention(m: TinyModel, il: int, q_lora_rank: int, kv_lora_rank: int, nope: int, v_head: int) -> None:
    """DeepSeek's multi-head latent attention as llama.cpp's converter writes it: queries through a
    low rank (``q_lora_rank`` > 0) or one matrix, the latent keys and values with the shared rotary
    key (``attn_kv_a_mqa``), and ``kv_b`` split into the per-head ``attn_k_b`` (transposed) and
    ``attn_v_b``."""
    p, rope = f"blk.{il}", m.head_dim - kv_lora_rank
    if q_lora_rank:
        m.matrix(f"{p}.attn_q_a.weight", q_lora_rank, m.n_embd)
        m.norm(f"{p}.attn_q_a_norm.weight", q_lora_rank)
        m.matrix(f"{p}.attn_q_b.weight", m.n_head * (nope + rope), q_lora_rank)
    else:
        m.matrix(f"{p}.attn_q.weight", m.n_head * (nope + rope), m.n_embd)
    m.matrix(f"{p}.attn_kv_a_mqa.weight", kv_lora_rank + rope, m.n_embd)
    m.norm(f"{p}.attn_kv_a_norm.weight", kv_lora_rank)
    kv_b = m.rng.normal(0, 1 / np.sqrt(kv_lora_rank), (m.n_head, nope + v_head, kv_lora_rank)).astype(np.float32)
    m.tensors[f"{p}.attn_k_b.weight"] = np.ascontiguousarray(kv_b[:, :nope].transpose(0, 2, 1))
    m.tensors[f"{p}.attn_v_b.weight"] = np.ascontiguousarray(kv_b[:, nope:])
    m.matrix(f"{p}.attn_output.weight", m.n_embd, m.n_head * v_head)


def deepseek_decoder(m: TinyModel, q_lora_rank: int, n_expert: int, n_used: int, **metadata: object) -> None:
    """DeepSeek V2/V3: MLA (latent rank 32, 16 unrotated and 8 rotated query/key dims, values of
    16), one leading dense layer, then experts of width 16 with one shared expert."""
    kv_lora_rank, nope, v_head, n_ff_exp = 32, 16, 16, 16
    m.metadata.update({
        "attention.layer_norm_rms_epsilon": 1e-6, "attention.head_count_kv": 1,
        "attention.key_length": m.head_dim, "attention.value_length": kv_lora_rank,
        "attention.key_length_mla": nope + m.head_dim - kv_lora_rank, "attention.value_length_mla": v_head,
        "attention.q_lora_rank": q_lora_rank, "attention.kv_lora_rank": kv_lora_rank,
        "rope.dimension_count": m.head_dim - kv_lora_rank, "leading_dense_block_count": 1,
        "expert_feed_forward_length": n_ff_exp, "expert_shared_count": 1, **metadata})
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"])
    for il in range(m.n_layer):
        latent_attention(m, il, q_lora_rank, kv_lora_rank, nope, v_head)
        if il == 0:
            m.ffn(il)
            continue
        m.experts(il, n_expert, n_used, n_ff_exp)
        for name, n_out, n_in in (("ffn_gate", n_ff_exp, m.n_embd), ("ffn_up", n_ff_exp, m.n_embd),
                                  ("ffn_down", m.n_embd, n_ff_exp)):
            m.matrix(f"blk.{il}.{name}_shexp.weight", n_out, n_in)


def deepseek2(m: TinyModel) -> None:
    """DeepSeek V3's routing: sigmoid gates, a bias per expert that only the choice sees, 16 experts
    in 4 groups of which each token may use the best 2 (by their two best experts), 4 experts per
    token, weights normalised and scaled by 2.5; YaRN (factor 4, mscale_all_dim 1) on the rotated dims."""
    deepseek_decoder(m, q_lora_rank=24, n_expert=16, n_used=4, **{
        "expert_gating_func": 2, "expert_weights_norm": True, "expert_weights_scale": 2.5,
        "expert_group_count": 4, "expert_group_used_count": 2,
        "rope.scaling.type": "yarn", "rope.scaling.factor": 4.0, "rope.scaling.original_context_length": 32,
        "rope.scaling.yarn_log_multiplier": 0.1})
    for il in range(1, m.n_layer):
        m.bias(f"blk.{il}.exp_probs_b.bias", 16)


def deepseek2_lite(m: TinyModel) -> None:
    """DeepSeek V2-Lite's layout: queries by one matrix (q_lora_rank 0), softmax gates, 8 experts
    with 2 per token, unnormalised weights; YaRN with V2's mscale_all_dim 0.707."""
    deepseek_decoder(m, q_lora_rank=0, n_expert=8, n_used=2, **{
        "expert_weights_scale": 1.0, "rope.scaling.type": "yarn", "rope.scaling.factor": 4.0,
        "rope.scaling.original_context_length": 32, "rope.scaling.yarn_log_multiplier": 0.0707})


def ssm_model(m: TinyModel, d_state: int, **ssm: int) -> None:
    """A state-space model (no attention: head count 0, as llama.cpp's converter writes it): RMS
    norms, d_inner = 2 n_embd, a conv kernel of 4, decays A = -exp(...) as the converter stores them."""
    m.metadata.update({"attention.head_count": 0, "attention.head_count_kv": 0, "feed_forward_length": 0,
                       "attention.layer_norm_rms_epsilon": 1e-5, "ssm.conv_kernel": 4,
                       "ssm.inner_size": 2 * m.n_embd, "ssm.state_size": d_state, **ssm})
    m.embedding()
    m.norms(["attn_norm"])


def mamba(m: TinyModel) -> None:
    """Mamba: per-channel decays over a state of 16, a step projection of rank 4."""
    di, ds, rank = 2 * m.n_embd, 16, 4
    ssm_model(m, ds, **{"ssm.time_step_rank": rank})
    for il in range(m.n_layer):
        p = f"blk.{il}"
        m.matrix(f"{p}.ssm_in.weight", 2 * di, m.n_embd)
        m.tensors[f"{p}.ssm_conv1d.weight"] = m.rng.normal(0, 0.5, (di, 4)).astype(np.float32)
        m.bias(f"{p}.ssm_conv1d.bias", di)
        m.matrix(f"{p}.ssm_x.weight", rank + 2 * ds, di)
        m.matrix(f"{p}.ssm_dt.weight", di, rank)
        m.bias(f"{p}.ssm_dt.bias", di)
        m.tensors[f"{p}.ssm_a"] = -np.exp(m.rng.uniform(-1, 1, (di, ds))).astype(np.float32)
        m.norm(f"{p}.ssm_d", di)
        m.matrix(f"{p}.ssm_out.weight", m.n_embd, di)


def mamba2(m: TinyModel) -> None:
    """Mamba-2: 8 heads of 16 in 2 groups, a state of 80 (ggml's SIMD loop over 64 values and a
    scalar tail of 16), one decay per head, the grouped RMS norm."""
    di, ds, n_head, ng = 2 * m.n_embd, 80, 8, 2
    ssm_model(m, ds, **{"ssm.time_step_rank": n_head, "ssm.group_count": ng})
    conv_dim = di + 2 * ng * ds
    for il in range(m.n_layer):
        p = f"blk.{il}"
        m.matrix(f"{p}.ssm_in.weight", 2 * di + 2 * ng * ds + n_head, m.n_embd)
        m.tensors[f"{p}.ssm_conv1d.weight"] = m.rng.normal(0, 0.5, (conv_dim, 4)).astype(np.float32)
        m.bias(f"{p}.ssm_conv1d.bias", conv_dim)
        m.bias(f"{p}.ssm_dt.bias", n_head)
        m.tensors[f"{p}.ssm_a"] = -np.exp(m.rng.uniform(-1, 1, (n_head, 1))).astype(np.float32)
        m.norm(f"{p}.ssm_d", n_head, 1)
        m.norm(f"{p}.ssm_norm.weight", ng, di // ng)
        m.matrix(f"{p}.ssm_out.weight", m.n_embd, di)


def rwkv_model(m: TinyModel, head_size: int, **metadata: object) -> None:
    """What RWKV-6 and RWKV-7 share: no attention heads, LayerNorms with biases (the embedding's
    too), the token shift of two rows per layer, and lerps in [0, 1]."""
    m.metadata.update({"attention.head_count": 0, "attention.head_count_kv": 0, "wkv.head_size": head_size,
                       "attention.layer_norm_epsilon": 1e-5, "token_shift_count": 2, **metadata})
    m.embedding()
    m.norm("token_embd_norm.weight", m.n_embd)
    m.bias("token_embd_norm.bias", m.n_embd)
    m.norms(["attn_norm", "attn_norm_2"], biases=True)


def lerp(m: TinyModel, name: str, *shape: int) -> None:
    m.tensors[name] = m.rng.uniform(0, 1, shape).astype(np.float32)


def qwen_rwkv_model(m: TinyModel, head_size: int, **metadata: object) -> None:
    """What ARWKV-7 and RWKV-6-Qwen2 share: RMS norms, a SwiGLU FFN, one token-shift row per layer."""
    m.metadata.update({"attention.head_count": 0, "attention.head_count_kv": 0, "wkv.head_size": head_size,
                       "attention.layer_norm_rms_epsilon": 1e-6, "token_shift_count": 1, **metadata})
    m.embedding()
    m.norms(["attn_norm", "ffn_norm"])


def rwkv6_lerps(m: TinyModel, p: str, rank: int, fused: bool = True) -> None:
    """RWKV-6's lerps: mu_x and five more, fused (or apart, as files converted before they were
    fused hold them), moved per token by a LoRA of ``rank``."""
    d = m.n_embd
    m.matrix(f"{p}.time_mix_w1.weight", 5 * rank, d, gain=0.5)
    m.tensors[f"{p}.time_mix_w2.weight"] = m.rng.normal(0, 0.1, (5, d, rank)).astype(np.float32)
    lerp(m, f"{p}.time_mix_lerp_x.weight", 1, 1, d)
    if fused:
        lerp(m, f"{p}.time_mix_lerp_fused.weight", 5, 1, 1, d)
        return
    for name in "wkvrg":
        lerp(m, f"{p}.time_mix_lerp_{name}.weight", 1, 1, d)


def rwkv6_decay(m: TinyModel, p: str, rank: int) -> None:
    """RWKV-6's decays: a base and a LoRA of ``rank``."""
    d = m.n_embd
    m.tensors[f"{p}.time_mix_decay.weight"] = m.rng.uniform(-3, 1, d).astype(np.float32)
    m.matrix(f"{p}.time_mix_decay_w1.weight", rank, d, gain=0.5)
    m.matrix(f"{p}.time_mix_decay_w2.weight", d, rank, gain=0.5)


def rwkv6(m: TinyModel, fused: bool = True) -> None:
    """RWKV-6: 2 heads of 64, the data-dependent lerps of rank 24 and decays of rank 16, fused
    lerps (or apart: ``rwkv6_unfused``), the residual halved after every layer."""
    hs, mix_rank, decay_rank = 64, 24, 16
    rwkv_model(m, hs, time_mix_extra_dim=mix_rank, time_decay_extra_dim=decay_rank, rescale_every_n_layers=1)
    d, n_head = m.n_embd, m.n_embd // hs
    for il in range(m.n_layer):
        p = f"blk.{il}"
        rwkv6_lerps(m, p, mix_rank, fused)
        m.tensors[f"{p}.time_mix_first.weight"] = m.rng.normal(0, 0.5, (n_head, hs)).astype(np.float32)
        rwkv6_decay(m, p, decay_rank)
        for name in ("key", "value", "receptance", "gate", "output"):
            m.matrix(f"{p}.time_mix_{name}.weight", d, d)
        m.norm(f"{p}.time_mix_ln.weight", d)
        m.bias(f"{p}.time_mix_ln.bias", d)
        lerp(m, f"{p}.channel_mix_lerp_k.weight", 1, 1, d)
        lerp(m, f"{p}.channel_mix_lerp_r.weight", 1, 1, d)
        m.matrix(f"{p}.channel_mix_key.weight", m.n_ff, d)
        m.matrix(f"{p}.channel_mix_value.weight", d, m.n_ff)
        m.matrix(f"{p}.channel_mix_receptance.weight", d, d)


def rwkv7_time_mix(m: TinyModel, p: str, rank: int, gated: bool) -> None:
    """RWKV-7's time mix: LoRAs of ``rank`` for the decay, the in-context learning rate, the value
    residual and (``gated``) the output gate, 6 or 5 fused lerps, the key's normalization and bonus."""
    d = m.n_embd
    for name in ("w", "a", "v"):
        m.bias(f"{p}.time_mix_{name}0.weight", d)
        m.matrix(f"{p}.time_mix_{name}1.weight", rank, d, gain=0.5)
        m.matrix(f"{p}.time_mix_{name}2.weight", d, rank, gain=0.5)
    if gated:
        m.matrix(f"{p}.time_mix_g1.weight", rank, d, gain=0.5)
        m.matrix(f"{p}.time_mix_g2.weight", d, rank)
    lerp(m, f"{p}.time_mix_lerp_fused.weight", 6 if gated else 5, 1, 1, d)
    m.norm(f"{p}.time_mix_k_k.weight", d)
    lerp(m, f"{p}.time_mix_k_a.weight", d)
    m.tensors[f"{p}.time_mix_r_k.weight"] = m.rng.normal(0, 0.5, d).astype(np.float32)
    for name in ("key", "value", "receptance", "output"):
        m.matrix(f"{p}.time_mix_{name}.weight", d, d)


def rwkv7(m: TinyModel) -> None:
    """RWKV-7: 2 heads of 64 (ggml's SIMD loop needs 64), LoRAs of rank 8 for the decay, the
    in-context learning rate, the value residual and the output gate."""
    hs, rank = 64, 8
    rwkv_model(m, hs, **{"attention.decay_lora_rank": rank, "attention.iclr_lora_rank": rank,
                         "attention.value_residual_mix_lora_rank": rank, "attention.gate_lora_rank": rank})
    d = m.n_embd
    for il in range(m.n_layer):
        p = f"blk.{il}"
        rwkv7_time_mix(m, p, rank, gated=True)
        m.norm(f"{p}.time_mix_ln.weight", d)
        m.bias(f"{p}.time_mix_ln.bias", d)
        lerp(m, f"{p}.channel_mix_lerp_k.weight", 1, 1, d)
        m.matrix(f"{p}.channel_mix_key.weight", m.n_ff, d)
        m.matrix(f"{p}.channel_mix_value.weight", d, m.n_ff)


def rwkv6qwen2(m: TinyModel) -> None:
    """RWKV-6-Qwen2: RWKV-6's time mix without the bonus (gated linear attention), 2 heads of 64
    sharing one key/value head, biased r, k, v; RMS norms and a SwiGLU FFN."""
    hs, mix_rank, decay_rank = 64, 24, 16
    d, kv = m.n_embd, 64
    qwen_rwkv_model(m, hs, **{"attention.head_count": 2, "attention.head_count_kv": 1,
                              "time_mix_extra_dim": mix_rank, "time_decay_extra_dim": decay_rank})
    for il in range(m.n_layer):
        p = f"blk.{il}"
        rwkv6_lerps(m, p, mix_rank)
        rwkv6_decay(m, p, decay_rank)
        for name, rows in (("key", kv), ("value", kv), ("receptance", d)):
            m.matrix(f"{p}.time_mix_{name}.weight", rows, d)
            m.bias(f"{p}.time_mix_{name}.bias", rows)
        m.matrix(f"{p}.time_mix_gate.weight", d, d)
        m.matrix(f"{p}.time_mix_output.weight", d, d)
        m.ffn(il)


def arwkv7(m: TinyModel) -> None:
    """ARWKV-7: RWKV-7's time mix without its output gate (5 lerps) or group norm, between RMS
    norms, and a SwiGLU FFN."""
    rank = 8
    qwen_rwkv_model(m, 64, **{"attention.decay_lora_rank": rank, "attention.iclr_lora_rank": rank,
                              "attention.value_residual_mix_lora_rank": rank})
    for il in range(m.n_layer):
        rwkv7_time_mix(m, f"blk.{il}", rank, gated=False)
        m.ffn(il)


def dbrx(m: TinyModel) -> None:
    """LayerNorms without biases, a fused QKV clipped to [-1, 1], 16 experts with 4 per token."""
    m.metadata["attention.layer_norm_epsilon"] = 1e-5
    m.metadata["attention.clamp_kqv"] = 1.0
    m.embedding()
    m.norms(["attn_norm", "attn_output_norm"])
    for il in range(m.n_layer):
        m.attention(il, fused=True)
        m.experts(il, n_expert=16, n_used=4, n_ff=m.n_ff)


def grok(m: TinyModel) -> None:
    """Grok: norms after attention and after the FFN, 8 GeGLU experts with 2 per token, a dense GeGLU
    FFN beside them in layer 0 only, layer 0's post-FFN norm named layer_output_norm and layer 1's
    post_ffw_norm; the file gives the embedding scale and caps (low enough that tanh bends the
    scores and logits) and leaves the attention output scale and the logit scale to llama.cpp's
    defaults."""
    m.metadata.update({"attention.layer_norm_rms_epsilon": 1e-5, "expert_feed_forward_length": m.n_ff,
                       "embedding_scale": 4.0, "attn_logit_softcapping": 1.0, "final_logit_softcapping": 8.0})
    m.embedding()
    m.norms(["attn_norm", "attn_output_norm", "ffn_norm"])
    for il in range(m.n_layer):
        m.attention(il)
        m.experts(il, n_expert=8, n_used=2, n_ff=m.n_ff)
        m.norm(f"blk.{il}.{'layer_output_norm' if il == 0 else 'post_ffw_norm'}.weight", m.n_embd)
    m.ffn(0)


def gpt_oss(m: TinyModel) -> None:
    """gpt-oss: heads of 32 (wider than n_embd / n_head, as the real model's), biased q, k, v and
    output, an attention sink per head (around the scores' size, so that some rows' sinks top
    their max), windows of ``GEMMA_WINDOW`` tokens on layer 0, 8 experts with 2 per token and
    biases everywhere, stored in MXFP4 as the released files hold them; gate and up weights four
    times the usual scale so that the SwiGLU's clamps at 7 act."""
    m.metadata.update({"attention.layer_norm_rms_epsilon": 1e-5, "attention.key_length": m.head_dim,
                       "attention.value_length": m.head_dim, "attention.sliding_window": GEMMA_WINDOW,
                       "expert_feed_forward_length": m.n_ff})
    m.embedding()
    m.norms(["attn_norm", "post_attention_norm"])
    for il in range(m.n_layer):
        p = f"blk.{il}"
        m.attention(il, qkv_bias=True, out_bias=True)
        m.tensors[f"{p}.attn_sinks.weight"] = m.rng.normal(1.0, 1.0, m.n_head).astype(np.float32)
        m.experts(il, n_expert=8, n_used=2, n_ff=m.n_ff)
        m.bias(f"{p}.ffn_gate_inp.bias", 8)
        for name, rows in (("ffn_gate_exps", m.n_ff), ("ffn_up_exps", m.n_ff), ("ffn_down_exps", m.n_embd)):
            if name != "ffn_down_exps":
                m.tensors[f"{p}.{name}.weight"] *= 4
            m.bias(f"{p}.{name}.bias", 8, rows)
            m.quantized[f"{p}.{name}.weight"] = gguf.GGMLQuantizationType.MXFP4


#: name -> (writer, extra TinyModel arguments)
ARCHS: dict[str, tuple[Callable[[TinyModel], None], dict]] = {
    "llama": (llama, {}),
    "llama3_1": (llama3_1, {"arch": "llama"}),
    "qwen2": (qwen2, {}),
    "qwen3": (qwen3, {}),
    "internlm2": (internlm2, {}),
    "xverse": (xverse, {}),
    "ernie4_5": (ernie4_5, {}),
    "seed_oss": (seed_oss, {}),
    "exaone": (exaone, {}),
    "smollm3": (smollm3, {"n_layer": 4}),
    "gemma": (gemma, {"head_dim": 32}),
    "starcoder2": (starcoder2, {}),
    "orion": (orion, {}),
    "stablelm": (stablelm, {}),
    "olmo2": (olmo2, {}),
    "phi2": (phi2, {}),
    "gemma2": (gemma2, {"head_dim": 32}),
    "gemma3": (gemma3, {"head_dim": 32, "n_layer": 6}),
    "phi2_fused": (phi2_fused, {"arch": "phi2"}),
    "qwen": (qwen, {"n_head_kv": 4}),
    "phi3": (phi3, {}),
    "gptneox": (gptneox, {}),
    "gptneox_sequential": (gptneox_sequential, {"arch": "gptneox"}),
    "codeshell": (codeshell, {}),
    "gpt2": (gpt2, {"n_head_kv": 4}),
    "starcoder": (starcoder, {"n_head_kv": 1}),
    "olmo": (olmo, {}),
    "command-r": (command_r, {}),
    "mpt": (mpt, {"n_head_kv": 4}),
    "bloom": (bloom, {"n_embd": 48, "n_head": 6, "n_head_kv": 6, "head_dim": 8}),
    "refact": (refact, {"n_head_kv": 1}),
    "falcon": (falcon, {"n_head_kv": 1}),
    "falcon_40b": (falcon_40b, {"arch": "falcon"}),
    "plamo": (plamo, {}),
    "chatglm": (chatglm, {}),
    "glm4": (glm4, {}),
    "llama_moe": (llama_moe, {"arch": "llama", "n_ff": 32}),
    "qwen2moe": (qwen2moe, {}),
    "qwen3moe": (qwen3moe, {}),
    "olmoe": (olmoe, {"n_ff": 16, "n_head_kv": 4}),
    "deepseek2": (deepseek2, {"n_layer": 3, "head_dim": 40}),
    "deepseek2_lite": (deepseek2_lite, {"arch": "deepseek2", "n_layer": 3, "head_dim": 40}),
    "dbrx": (dbrx, {"n_ff": 32}),
    "baichuan": (baichuan, {"n_layer": 40, "n_embd": 32, "n_head": 4, "n_head_kv": 4, "head_dim": 8, "n_ff": 32}),
    "mamba": (mamba, {}),
    "mamba2": (mamba2, {}),
    "grok": (grok, {"n_ff": 32}),
    "gpt-oss": (gpt_oss, {"head_dim": 32, "n_ff": 32}),
    "rwkv6": (rwkv6, {"n_embd": 128, "n_ff": 256}),
    "rwkv7": (rwkv7, {"n_embd": 128, "n_ff": 256}),
    "arwkv7": (arwkv7, {"n_embd": 128, "n_ff": 256}),
    "rwkv6qwen2": (rwkv6qwen2, {"n_embd": 128, "n_ff": 256}),
    "rwkv6_unfused": (functools.partial(rwkv6, fused=False), {"arch": "rwkv6", "n_embd": 128, "n_ff": 256}),
}


def llama_cpp_logits(path: Path, tokens: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=128, verbose=False)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


#: recurrent models also get llama.cpp's logits of the tokens decoded one at a time (``incremental``)
RECURRENT = ("mamba", "mamba2", "rwkv6", "rwkv7", "arwkv7", "rwkv6qwen2", "rwkv6_unfused")


def llama_cpp_incremental_logits(path: Path, tokens: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=128, verbose=False)
    for token in tokens:
        llm.eval([token])
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=list(ARCHS), help="architectures (default: all)")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        build, shape = ARCHS[arch]
        shape = dict(shape)
        model = TinyModel(shape.pop("arch", arch), seed=1000 + list(ARCHS).index(arch), **shape)
        build(model)
        path = OUT_DIR / f"{arch}.gguf"
        model.write(path)
        logits = llama_cpp_logits(path, TOKENS)
        top2 = np.sort(logits, axis=1)[:, -2:]
        extra = {"incremental": llama_cpp_incremental_logits(path, TOKENS)} if arch in RECURRENT else {}
        np.savez_compressed(OUT_DIR / f"{arch}.logits.npz", tokens=np.array(TOKENS, np.int32), logits=logits,
                            arch=model.arch, **extra)
        print(f"{arch}: {path.stat().st_size / 1024:.0f} KiB, logits std {logits.std():.2f}, "
              f"smallest top-1 margin {np.min(top2[:, 1] - top2[:, 0]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
