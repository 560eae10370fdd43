"""The plugin API's lowering machinery (ArenaLowering) as a third-party device backend uses it: a
lowering that emits one step per node, written as docs/plugins.md shows, from llmcore.plugin_api
alone. The Vulkan and GPU-kernel plugins' lowerings stand on it; tests/test_vulkan.py and
tests/test_sycl.py run those on devices."""

from __future__ import annotations

from dataclasses import dataclass

from llmcore.plugin_api import (
    F16, F32, I32, STEP_KEY, ArenaLowering, ArenaProgram, GGMLType, Node, Op, Ref, RopeParams, Subgraph,
)


@dataclass
class Step:
    op: str
    refs: list[Ref]


class OneStepPerNode(ArenaLowering[Step]):
    def emit(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        if node.op is Op.ROPE:
            srcs = [srcs[0], self.rope_table(node)]
        self.program.steps.append(Step(node.op.value, [*srcs, out]))

    def emit_mul_mat(self, node: Node, w: Ref, x: Ref, d_off: int, s_off: int, out: Ref) -> None:
        self.program.steps.append(Step("mul_mat", [w, x, out]))

    def emit_rounding(self, x: Ref, out: Ref, mode: str, blocks: int, d_off: int, s_off: int) -> None:
        self.program.steps.append(Step(f"round_{mode}", [x, out]))


def lowered(nodes: list[Node], inputs: list[Node], outputs: list[Node], weights=()) -> ArenaProgram[Step]:
    return OneStepPerNode(alignment=256).lower(Subgraph(nodes, inputs, outputs, list(weights)))


def test_values_share_the_arena_once_their_last_reader_has_run():
    x = Node(Op.INPUT, (), (4, 100), F32)
    a = Node(Op.SILU, (x,), (4, 100), F32)
    r = Node(Op.RESHAPE, (a,), (400,), F32)  # a's value under another shape
    b = Node(Op.SILU, (r,), (400,), F32)
    c = Node(Op.ADD, (b, r), (400,), F32)  # a lives until here: b cannot take its range
    d = Node(Op.SILU, (c,), (400,), F32)  # a and b are dead: d takes a range of theirs
    e = Node(Op.SILU, (d,), (400,), F32)  # an output: read back after the last step
    program = lowered([a, r, b, c, d, e], [x], [e, c])
    assert [s.op for s in program.steps] == ["silu", "silu", "add", "silu", "silu"]
    assert program.steps[2].refs[1] == program.steps[0].refs[-1] == Ref("arena", 0, 1600)
    offsets = program.arena_offsets
    assert len({offsets[0], offsets[1], offsets[2]}) == 3  # 1600 bytes, aligned to 1792
    assert offsets[3] in (offsets[0], offsets[1]) and offsets[4] not in (offsets[2], offsets[3])
    assert program.arena_size == 3 * 1792
    assert program.io == {f"in{x.id}": 1600, STEP_KEY: 16}
    assert program.inputs == [(x.id, f"in{x.id}", "float32", (4, 100))]
    assert [(ref.key, shape, dtype) for ref, shape, dtype in program.outputs] == [(4, (400,), "float32"),
                                                                                 (2, (400,), "float32")]


def test_a_kv_store_writes_the_cache_in_place():
    cache = Node(Op.CACHE, (), (8, 16), F16, name="cache_k0")
    x = Node(Op.INPUT, (), (2, 16), F32)
    cells = Node(Op.INPUT, (), (2,), I32)
    store = Node(Op.KV_STORE, (cache, x, cells), (8, 16), F16)
    program = OneStepPerNode(alignment=256).lower(Subgraph([store], [x, cells], [store], [], [cache]))
    cache_ref = Ref("cache", "cache_k0", 8 * 16 * 2)
    assert program.steps[0].refs == [cache_ref, Ref("io", f"in{x.id}", 128), Ref("io", f"in{cells.id}", 8), cache_ref]
    assert program.arena_size == 0 and program.outputs == [(cache_ref, (8, 16), "float16")]


def test_rope_nodes_of_the_same_positions_share_one_table():
    q = Node(Op.INPUT, (), (3, 2, 8), F32)
    k = Node(Op.INPUT, (), (3, 1, 8), F32)
    positions = Node(Op.INPUT, (), (3,), I32)
    rope = RopeParams(n_rot=8, neox=False, freq_base=10000.0)
    nodes = [Node(Op.ROPE, (src, positions), src.shape, F32, {"rope": rope}) for src in (q, k)]
    program = lowered(nodes, [q, k, positions], nodes)
    assert program.rope_tables == [("rope0", positions.id, rope)]
    assert program.io["rope0"] == 4 * 2 * 3 * 4  # cos and sin, n x n_rot/2 floats each
    assert program.inputs[2][2] == "int32"


def test_activations_are_rounded_once_per_value_and_rounding():
    x = Node(Op.INPUT, (), (2, 256), F32)
    weights = [Node(Op.WEIGHT, (), (5, 256), t, name=f"w{i}")
               for i, t in enumerate([GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.F32])]
    nodes = [Node(Op.MUL_MAT, (w, x), (2, 5), F32) for w in weights]
    program = lowered(nodes, [x], nodes, weights)
    assert [s.op for s in program.steps] == ["round_q8_1", "mul_mat", "mul_mat", "round_q8_k", "mul_mat", "mul_mat"]
    q8_1 = program.steps[0].refs[1]
    assert q8_1.size == 4 * (512 + 2 * 16)  # the values, then a scale and a sum per block of 32
    assert program.steps[1].refs[:2] == [Ref("weight", "w0", 5 * 8 * 34), q8_1]
    assert program.steps[5].refs[1] == Ref("io", f"in{x.id}", 2048)  # f32 weights read x as it is
