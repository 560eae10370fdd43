"""Mamba (``mamba``: Mamba, Falcon-Mamba) and Mamba-2 (``mamba2``): selective state-space models
with no attention. Each block is x + out_proj(silu(z) * (scan(conv(x_in)) + D x_in)) after an RMS
norm, where the causal conv1d and the selective scan continue from a state kept per sequence
(llama.cpp's recurrent memory) instead of reading a KV cache.

Mamba projects x_in and z, then (after the conv) the step dt through a low-rank matrix and B, C;
its decay A is one value per channel and state element. Mamba-2 projects z, x, B, C and one dt per
head at once, convolves x, B and C, has one decay per head, and normalizes silu(z) * y in groups.
Fused projections are read as row ranges of their weights (the products are the same), so the
conv of Mamba-2's x, B and C keeps three state rows per layer where llama.cpp keeps one."""

from __future__ import annotations

from llmcore.errors import ModelError
from llmcore.graph.builder import F32, GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, SSMParams, register
from llmcore.models.layers import output_head, rms_norm, select_outputs, token_embedding


@register
class Mamba(Architecture):
    names = ("mamba",)
    recurrent = True

    @property
    def ssm(self) -> SSMParams:
        if self.hp.ssm is None:
            raise ModelError(f"metadata '{self.hp.arch}.ssm.conv_kernel' is missing: a {self.hp.arch} file "
                             "needs the ssm.* sizes")
        return self.hp.ssm

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.mixer(g, rms_norm(g, self, x, f"blk.{il}.attn_norm.weight"), inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that produce logits go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(h, x)
        return output_head(g, self, x)

    def state(self, g: GraphBuilder, name: str, width: int) -> Node:
        """State rows of one kind for each sequence, float32 as llama.cpp's recurrent memory keeps them."""
        return g.cache(name, (self.n_seq_max, width), F32)

    def conv(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int, state: str, rows: tuple[int, int]) -> Node:
        """silu(conv1d(x) + bias) over channels ``rows`` of the layer's conv weight."""
        weight = self.w_rows(g, f"blk.{il}.ssm_conv1d.weight", *rows)
        bias = self.w_rows(g, f"blk.{il}.ssm_conv1d.bias", *rows)
        cache = self.state(g, f"blk.{il}.{state}", x.shape[1] * (self.ssm.d_conv - 1))
        return g.silu(g.add(g.ssm_conv(cache, x, weight, inp.state_slots), bias))

    def project(self, g: GraphBuilder, x: Node, name: str, start: int, stop: int) -> Node:
        return g.mul_mat(self.w_rows(g, name, start, stop), x)

    def mixer(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        p, prefix = self.ssm, f"blk.{il}"
        n = x.shape[0]
        di, ds, rank = p.d_inner, p.d_state, p.dt_rank
        if di != 2 * self.hp.n_embd:
            raise ModelError(f"metadata '{self.hp.arch}.ssm.inner_size' is {di}: only an expansion factor of 2 "
                             f"({2 * self.hp.n_embd}) is supported, as in llama.cpp")
        z = self.project(g, x, f"{prefix}.ssm_in.weight", di, 2 * di)
        x = self.conv(g, self.project(g, x, f"{prefix}.ssm_in.weight", 0, di), inp, il, "conv_x", (0, di))
        dt, b, c = (self.project(g, x, f"{prefix}.ssm_x.weight", start, stop)
                    for start, stop in ((0, rank), (rank, rank + ds), (rank + ds, rank + 2 * ds)))
        if p.dt_b_c_rms:  # Falcon-Mamba
            dt, b, c = (g.rms_norm(t, self.hp.norm_eps) for t in (dt, b, c))
        dt = g.add(g.mul_mat(self.w(g, f"{prefix}.ssm_dt.weight"), dt), self.w(g, f"{prefix}.ssm_dt.bias"))
        y = g.ssm_scan(self.state(g, f"{prefix}.ssm_state", di * ds), g.reshape(x, (n, di, 1)), dt,
                       self.w(g, f"{prefix}.ssm_a"), g.reshape(b, (n, 1, ds)), g.reshape(c, (n, 1, ds)),
                       self.w(g, f"{prefix}.ssm_d"), inp.state_slots)
        return g.mul_mat(self.w(g, f"{prefix}.ssm_out.weight"), g.swiglu(z, y))


@register
class Mamba2(Mamba):
    names = ("mamba2",)

    def mixer(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        p, prefix = self.ssm, f"blk.{il}"
        n = x.shape[0]
        di, ds, ng, n_head = p.d_inner, p.d_state, p.n_group, p.dt_rank
        if di % n_head or di % ng or n_head % ng:
            raise ModelError(f"metadata '{self.hp.arch}.ssm.*': {n_head} heads and {ng} groups do not divide "
                             f"the inner size {di}")
        # ssm_in's rows: z, x, B, C, dt; the conv's channels: x, B, C
        bounds = [0, di, 2 * di, 2 * di + ng * ds, 2 * di + 2 * ng * ds, 2 * di + 2 * ng * ds + n_head]
        z, x_in, b_in, c_in, dt = (self.project(g, x, f"{prefix}.ssm_in.weight", start, stop)
                                   for start, stop in zip(bounds, bounds[1:]))
        x, b, c = (self.conv(g, part, inp, il, state, (start - di, stop - di))
                   for part, state, start, stop in zip((x_in, b_in, c_in), ("conv_x", "conv_b", "conv_c"),
                                                       bounds[1:4], bounds[2:5]))
        dt = g.add(dt, self.w(g, f"{prefix}.ssm_dt.bias"))
        y = g.ssm_scan(self.state(g, f"{prefix}.ssm_state", di * ds), g.reshape(x, (n, n_head, di // n_head)), dt,
                       self.w(g, f"{prefix}.ssm_a"), g.reshape(b, (n, ng, ds)), g.reshape(c, (n, ng, ds)),
                       self.w(g, f"{prefix}.ssm_d"), inp.state_slots)
        y = g.reshape(g.swiglu(z, y), (n, ng, di // ng))  # the gated RMS norm, group by group
        y = g.reshape(rms_norm(g, self, y, f"{prefix}.ssm_norm.weight"), (n, di))
        return g.mul_mat(self.w(g, f"{prefix}.ssm_out.weight"), y)
