#version 450
// Gated linear units: out = act(gate) * up, with act silu (swiglu) or gelu (geglu).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer Gate { float gate[]; };
layout(binding = 1) readonly buffer Up { float up[]; };
layout(binding = 2) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint total; uint op; } p;
#include "common.glsl"
#include "activations.glsl"

const uint OP_SWIGLU = 0u;

void main() {
    uint i = linear_group() * 256u + gl_LocalInvocationID.x;
    if (i >= p.total) {
        return;
    }
    float g = gate[i];
    y[i] = (p.op == OP_SWIGLU ? silu(g) : gelu(g)) * up[i];
}
