#version 450
// out[i, :] = table[ids[i], :] as float32, one invocation per 32-value unit of a row.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer Table { uint w[]; };
layout(binding = 1) readonly buffer Ids { int ids[]; };
layout(binding = 2) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint n; uint cols; uint row_bytes; } p;
#include "common.glsl"
#include "quants.glsl"

void main() {
    uint units = (p.cols + 31u) / 32u;
    uint idx = linear_group() * 64u + gl_LocalInvocationID.x;
    if (idx >= p.n * units) {
        return;
    }
    uint i = idx / units;
    uint u = idx % units;
    float q[32];
    float d, m;
    load_unit(uint(ids[i]) * p.row_bytes, u, p.cols, q, d, m);
    uint end = min(32u, p.cols - u * 32u);
    for (uint j = 0u; j < end; j++) {
        y[i * p.cols + u * 32u + j] = q[j] * d + m;
    }
}
