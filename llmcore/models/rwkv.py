"""RWKV-6 (``rwkv6``, "Finch"), RWKV-7 (``rwkv7``, "Goose"), and ARWKV-7 (``arwkv7``) and RWKV-6-Qwen2
(``rwkv6qwen2``), their time mixes in a Qwen-style block of RMS norms and a SwiGLU FFN: attention-free
models whose
time mix is a linear recurrence over a matrix state per head, and whose channel mix is a
squared-ReLU FFN. Both mixes read the token before (the token shift), kept with the wkv state per
sequence in llama.cpp's recurrent memory, so one token at a time computes what one batch does.

As llama.cpp's src/models/rwkv6-base.cpp and rwkv7-base.cpp: each input of a mix is the lerp
``x + (x_prev - x) * mu`` (RWKV-6 adds a data-dependent LoRA to mu), the wkv output is group-normed
head by head, and RWKV-7 adds its first layer's values to every later layer's (the value residual)."""

from __future__ import annotations

import math

from llmcore.errors import ModelError
from llmcore.graph.builder import F32, GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    _project,
    ffn_swiglu,
    layer_norm,
    lm_head,
    output_head,
    rms_norm,
    select_outputs,
    token_embedding,
    weight_product,
)

GROUP_NORM_EPS = 64e-5  # llama.cpp's, for the wkv output's norm per head
L2_NORM_EPS = 1e-12  # RWKV-7's normalized removal key


@register
class Rwkv6(Architecture):
    names = ("rwkv6",)
    recurrent = True
    n_mix = 5  # lerped inputs of the time mix: w, k, v, r, g

    @property
    def head_size(self) -> int:
        size = self.hp.wkv_head_size
        if size == 0 or self.hp.n_embd % size:
            raise ModelError(f"metadata '{self.hp.arch}.wkv.head_size' is {size}: it must divide the "
                             f"embedding width {self.hp.n_embd}")
        return size

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = layer_norm(g, self, token_embedding(g, self, inp), "token_embd_norm")
        v_first: list[Node] = []  # RWKV-7's first-layer values
        for il in range(self.hp.n_layer):
            g.layer = il
            att_norm = layer_norm(g, self, x, f"blk.{il}.attn_norm")
            shifted = self.token_shift(g, att_norm, inp, f"blk.{il}.shift_att")
            ffn_inp = g.add(self.time_mix(g, att_norm, shifted, inp, il, v_first), x)
            ffn_norm = layer_norm(g, self, ffn_inp, f"blk.{il}.attn_norm_2")
            shifted = self.token_shift(g, ffn_norm, inp, f"blk.{il}.shift_ffn")
            if il == self.hp.n_layer - 1:  # only the rows that produce logits go further
                ffn_inp, ffn_norm, shifted = (select_outputs(g, inp, t) for t in (ffn_inp, ffn_norm, shifted))
            x = g.add(self.channel_mix(g, ffn_norm, shifted, il), ffn_inp)
            if self.hp.rescale_every and (il + 1) % self.hp.rescale_every == 0:
                x = g.scale(x, 0.5)
        g.layer = self.hp.n_layer
        return lm_head(g, self, layer_norm(g, self, x, "output_norm"))

    # -- blocks shared by both versions ---------------------------------------------------------

    def token_shift(self, g: GraphBuilder, x: Node, inp: BatchInputs, state: str) -> Node:
        """Each token's previous row in its sequence, from the state row for the first."""
        return g.token_shift(g.cache(state, (self.n_seq_max, x.shape[1]), F32), x, inp.state_slots)

    def wkv_state(self, g: GraphBuilder, il: int) -> Node:
        return g.cache(f"blk.{il}.ssm_state", (self.n_seq_max, self.hp.n_embd * self.head_size), F32)

    def vector(self, g: GraphBuilder, name: str, shape: tuple[int, ...]) -> Node:
        """Weight ``name`` read as ``shape``, the same values (the converter writes lerps as [1, 1, n_embd],
        llama.cpp reads time_mix_r_k [n_embd] as [n_head, head_size])."""
        spec = self.weights.get(name)
        if spec is None:
            raise ModelError(f"tensor {name} is missing from the model file")
        if math.prod(spec.shape) != math.prod(shape):
            raise ModelError(f"tensor {name} has shape {spec.shape}; {shape} is needed")
        return g.weight(name, shape, spec.type)

    def lerp_inputs(self, g: GraphBuilder, x: Node, shifted: Node, mix: Node | None, il: int) -> list[Node]:
        """The time mix's inputs x + (x_prev - x) * (mu_i [+ mix_i]) for each fused lerp mu_i
        (ggml repeats x_prev - x and x over the mixes, as here); RWKV-6 files converted before the
        lerps were fused hold them apart (time_mix_lerp_w, _k, _v, _r, _g)."""
        n, d = x.shape
        if mix is not None and not self.has(f"blk.{il}.time_mix_lerp_fused.weight"):
            sx, flat = self.sub(g, shifted, x), g.reshape(mix, (n, self.n_mix * d))
            return [g.add(g.mul(g.add(g.slice(flat, i * d, (i + 1) * d),
                                      self.vector(g, f"blk.{il}.time_mix_lerp_{name}.weight", (d,))), sx), x)
                    for i, name in enumerate("wkvrg")]
        times = self.n_mixes(il)
        mu = self.vector(g, f"blk.{il}.time_mix_lerp_fused.weight", (times, d))
        if mix is not None:
            mu = g.add(mix, mu)
        lerped = g.add(g.mul(self.repeat(g, self.sub(g, shifted, x), times), mu), self.repeat(g, x, times))
        flat = g.reshape(lerped, (n, times * d))
        return [g.slice(flat, i * d, (i + 1) * d) for i in range(times)]

    def n_mixes(self, il: int) -> int:
        return self.n_mix

    @staticmethod
    def sub(g: GraphBuilder, a: Node, b: Node) -> Node:
        """a - b, exactly: IEEE subtraction is the addition of the negation."""
        return g.add(a, g.scale(b, -1.0))

    @staticmethod
    def repeat(g: GraphBuilder, x: Node, times: int) -> Node:
        """x [n, d] repeated as [n, times, d] (ggml_repeat)."""
        joined = x
        for _ in range(times - 1):
            joined = g.concat(joined, x)
        return g.reshape(joined, (x.shape[0], times, x.shape[1]))

    def group_norm(self, g: GraphBuilder, y: Node, il: int) -> Node:
        """The wkv output normed head by head, then scaled and shifted by ``time_mix_ln``."""
        n = y.shape[0]
        heads = g.norm(g.reshape(y, (n, self.hp.n_embd // self.head_size, self.head_size)), GROUP_NORM_EPS)
        y = g.mul(g.reshape(heads, (n, self.hp.n_embd)), self.w(g, f"blk.{il}.time_mix_ln.weight"))
        return g.add(y, self.w(g, f"blk.{il}.time_mix_ln.bias"))

    def linear(self, g: GraphBuilder, name: str, x: Node) -> Node:
        return _project(g, self, x, name)

    def squared_relu_key(self, g: GraphBuilder, x: Node, il: int) -> Node:
        k = g.clamp(self.linear(g, f"blk.{il}.channel_mix_key", x), 0.0, float("inf"))  # relu
        return g.mul(k, k)

    def heads(self, g: GraphBuilder, x: Node) -> Node:
        return g.reshape(x, (x.shape[0], x.shape[1] // self.head_size, self.head_size))

    def shared_heads(self, g: GraphBuilder, x: Node) -> Node:
        """Key or value heads [n, n_head_kv, head] each repeated for the query heads that share it
        (RWKV-6-Qwen2's grouped keys and values, ggml_repeat)."""
        n, n_kv, head = x.shape
        n_head = self.hp.n_embd // head
        if n_kv == n_head:
            return x
        if n_head % n_kv:
            raise ModelError(f"metadata '{self.hp.arch}.attention.head_count_kv': {n_kv} key/value heads "
                             f"cannot be shared among {n_head} heads")
        rows = g.reshape(x, (n * n_kv, head))
        return g.reshape(self.repeat(g, rows, n_head // n_kv), (n, n_head, head))

    # -- RWKV-6 -----------------------------------------------------------------------------------

    def time_mix(self, g: GraphBuilder, x: Node, shifted: Node, inp: BatchInputs, il: int,
                 v_first: list[Node]) -> Node:
        p, n = f"blk.{il}", x.shape[0]
        w1 = self.w(g, f"{p}.time_mix_w1.weight")
        w2 = self.w(g, f"{p}.time_mix_w2.weight")  # [5, n_embd, extra]
        sx = self.sub(g, shifted, x)
        xxx = g.add(g.mul(sx, self.vector(g, f"{p}.time_mix_lerp_x.weight", (x.shape[1],))), x)
        xxx = g.tanh(g.mul_mat(w1, xxx))
        mix = g.mul_mat_heads(w2, g.reshape(xxx, (n, self.n_mix, w2.shape[2])))  # [n, 5, n_embd]
        xw, xk, xv, xr, xg = self.lerp_inputs(g, x, shifted, mix, il)
        qrwkv = not self.has(f"{p}.time_mix_first.weight")  # RWKV-6-Qwen2: gated linear attention
        r, k, v = (self.heads(g, self.linear(g, f"{p}.time_mix_{name}", t))
                   for name, t in (("receptance", xr), ("key", xk), ("value", xv)))
        k, v = self.shared_heads(g, k), self.shared_heads(g, v)
        gate = self.linear(g, f"{p}.time_mix_gate", xg)
        gate = g.sigmoid(gate) if qrwkv else g.silu(gate)
        decay = g.mul_mat(self.w(g, f"{p}.time_mix_decay_w2.weight"),
                          g.tanh(g.mul_mat(self.w(g, f"{p}.time_mix_decay_w1.weight"), xw)))
        decay = g.add(decay, self.vector(g, f"{p}.time_mix_decay.weight", (x.shape[1],)))
        decay = self.heads(g, g.exp(g.scale(g.exp(decay), -1.0)))
        if qrwkv:  # k (1 - w): the decay's complement is the key's weight
            k = self.sub(g, k, g.mul(k, decay))
            y = g.gated_linear_attn(self.wkv_state(g, il), k, v, r, decay, inp.state_slots, self.head_size ** -0.5)
        else:
            n_head = self.hp.n_embd // self.head_size
            u = self.vector(g, f"{p}.time_mix_first.weight", (n_head, self.head_size))
            y = self.group_norm(g, g.rwkv_wkv6(self.wkv_state(g, il), k, v, r, u, decay, inp.state_slots), il)
        y = g.mul(y, gate)
        return weight_product(g, self, self.w(g, f"{p}.time_mix_output.weight"), y, f"{p}.time_mix_output")

    def channel_mix(self, g: GraphBuilder, x: Node, shifted: Node, il: int) -> Node:
        p, d = f"blk.{il}", x.shape[1]
        sx = self.sub(g, shifted, x)
        xk = g.add(g.mul(sx, self.vector(g, f"{p}.channel_mix_lerp_k.weight", (d,))), x)
        xr = g.add(g.mul(sx, self.vector(g, f"{p}.channel_mix_lerp_r.weight", (d,))), x)
        r = g.sigmoid(self.linear(g, f"{p}.channel_mix_receptance", xr))
        return g.mul(r, self.linear(g, f"{p}.channel_mix_value", self.squared_relu_key(g, xk, il)))


@register
class Rwkv7(Rwkv6):
    names = ("rwkv7",)

    def n_mixes(self, il: int) -> int:
        """r, w, k, v, a, and g where the model gates its output."""
        return 6 if self.gated(il) else 5

    def gated(self, il: int) -> bool:
        return self.has(f"blk.{il}.time_mix_g1.weight") and self.has(f"blk.{il}.time_mix_g2.weight")

    def lora(self, g: GraphBuilder, x: Node, il: int, name: str, inner=None) -> Node:
        """time_mix_{name}2 @ inner(time_mix_{name}1 @ x): a low-rank projection."""
        h = g.mul_mat(self.w(g, f"blk.{il}.time_mix_{name}1.weight"), x)
        return g.mul_mat(self.w(g, f"blk.{il}.time_mix_{name}2.weight"), inner(h) if inner else h)

    def time_mix(self, g: GraphBuilder, x: Node, shifted: Node, inp: BatchInputs, il: int,
                 v_first: list[Node]) -> Node:
        p, d = f"blk.{il}", x.shape[1]
        xr, xw, xk, xv, xa, *xg = self.lerp_inputs(g, x, shifted, None, il)
        r = self.linear(g, f"{p}.time_mix_receptance", xr)
        w = g.add(self.lora(g, xw, il, "w", g.tanh), self.vector(g, f"{p}.time_mix_w0.weight", (d,)))
        w = g.exp(g.scale(g.sigmoid(w), -0.606531))  # decays in (e^-0.6065, 1): exp(-e^-0.5 sigmoid)
        k = self.linear(g, f"{p}.time_mix_key", xk)
        v = self.linear(g, f"{p}.time_mix_value", xv)
        if not v_first:
            v_first.append(v)
        else:  # the value residual: v moves toward the first layer's value by a learned amount
            mix = g.sigmoid(g.add(self.lora(g, xv, il, "v"), self.vector(g, f"{p}.time_mix_v0.weight", (d,))))
            v = g.add(v, g.mul(self.sub(g, v_first[0], v), mix))
        a = g.sigmoid(g.add(self.lora(g, xa, il, "a"), self.vector(g, f"{p}.time_mix_a0.weight", (d,))))
        kk = g.l2_norm(self.heads(g, g.mul(k, self.vector(g, f"{p}.time_mix_k_k.weight", (d,)))), L2_NORM_EPS)
        ka = g.mul(k, self.vector(g, f"{p}.time_mix_k_a.weight", (d,)))
        k = g.add(k, self.sub(g, g.mul(a, ka), ka))
        r, w, k, v, a = (self.heads(g, t) for t in (r, w, k, v, a))
        y = g.rwkv_wkv7(self.wkv_state(g, il), r, w, k, v, g.scale(kk, -1.0), g.mul(kk, a), inp.state_slots)
        if self.has(f"{p}.time_mix_ln.weight"):
            y = self.group_norm(g, y, il)
        n_head = d // self.head_size
        r_k = self.vector(g, f"{p}.time_mix_r_k.weight", (n_head, self.head_size))
        rk = g.sum_rows(g.mul(g.mul(k, r), r_k))  # [n, n_head, 1]: the bonus of each head
        y = g.add(y, g.reshape(g.mul(v, rk), (x.shape[0], d)))
        if xg:
            y = g.mul(y, self.lora(g, xg[0], il, "g", g.sigmoid))
        return weight_product(g, self, self.w(g, f"{p}.time_mix_output.weight"), y, f"{p}.time_mix_output")

    def channel_mix(self, g: GraphBuilder, x: Node, shifted: Node, il: int) -> Node:
        xk = g.add(g.mul(self.sub(g, shifted, x), self.vector(g, f"blk.{il}.channel_mix_lerp_k.weight", (x.shape[1],))), x)
        return self.linear(g, f"blk.{il}.channel_mix_value", self.squared_relu_key(g, xk, il))



def qwen_block_forward(m: Rwkv6, g: GraphBuilder, inp: BatchInputs) -> Node:
    """The blocks of ARWKV-7 and RWKV-6-Qwen2: an RWKV time mix between RMS norms, a SwiGLU FFN
    without a token shift, the final RMS norm (with its bias where the file has one)."""
    x = token_embedding(g, m, inp)
    v_first: list[Node] = []
    for il in range(m.hp.n_layer):
        g.layer = il
        att_norm = rms_norm(g, m, x, f"blk.{il}.attn_norm.weight")
        shifted = m.token_shift(g, att_norm, inp, f"blk.{il}.shift_att")
        ffn_inp = g.add(m.time_mix(g, att_norm, shifted, inp, il, v_first), x)
        if il == m.hp.n_layer - 1:
            ffn_inp = select_outputs(g, inp, ffn_inp)
        x = g.add(ffn_swiglu(g, m, rms_norm(g, m, ffn_inp, f"blk.{il}.ffn_norm.weight"), il), ffn_inp)
    if not m.has("output_norm.bias"):
        return output_head(g, m, x)
    g.layer = m.hp.n_layer
    return lm_head(g, m, g.add(rms_norm(g, m, x, "output_norm.weight"), m.w(g, "output_norm.bias")))


@register
class Arwkv7(Rwkv7):
    """RWKV-7's time mix in a Qwen-style block."""

    names = ("arwkv7",)
    forward = qwen_block_forward


@register
class Rwkv6Qwen2(Rwkv6):
    """RWKV-6's time mix without the bonus, as gated linear attention over grouped keys and values,
    in a Qwen-style block (Qwen2 distilled into RWKV-6)."""

    names = ("rwkv6qwen2",)
    forward = qwen_block_forward
