#version 450
// out = a OP b, b repeating over a's leading axes (a bias or a norm weight over every row).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint total; uint nb; uint op; } p;
#include "common.glsl"

const uint OP_ADD = 0u;

void main() {
    uint i = linear_group() * 256u + gl_LocalInvocationID.x;
    if (i >= p.total) {
        return;
    }
    float rhs = b[i % p.nb];
    y[i] = p.op == OP_ADD ? a[i] + rhs : a[i] * rhs;
}
