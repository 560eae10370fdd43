#version 450
// Element-wise ops of one source: scale by a factor, silu, gelu (ggml's tanh approximation).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint total; uint op; float factor; } p;
#include "common.glsl"
#include "activations.glsl"

const uint OP_SCALE = 0u;
const uint OP_SILU = 1u;

void main() {
    uint i = linear_group() * 256u + gl_LocalInvocationID.x;
    if (i >= p.total) {
        return;
    }
    float v = a[i];
    y[i] = p.op == OP_SCALE ? v * p.factor : (p.op == OP_SILU ? silu(v) : gelu(v));
}
