#version 450
// out[i, :] = table[ids[i], :] as float32: one invocation per value for F32/F16 tables (any
// width), per 32-value unit for the quantized ones.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer Table { uint w[]; };
layout(binding = 1) readonly buffer Ids { int ids[]; };
layout(binding = 2) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint n; uint cols; uint row_bytes; } p;
#include "common.glsl"
#include "quants.glsl"

void main() {
    uint idx = linear_group() * 64u + gl_LocalInvocationID.x;
#if defined(TYPE_F32) || defined(TYPE_F16)
    if (idx >= p.n * p.cols) {
        return;
    }
    uint i = idx / p.cols;
    uint j = idx % p.cols;
    uint row_off = uint(ids[i]) * p.row_bytes;
#if defined(TYPE_F32)
    y[idx] = uintBitsToFloat(w[(row_off >> 2) + j]);
#else
    y[idx] = READ_F16(w, row_off + 2u * j);
#endif
#else
    uint units = p.cols / 32u;
    if (idx >= p.n * units) {
        return;
    }
    uint i = idx / units;
    uint u = idx % units;
    vec4 q[8];
    float d, m;
    load_unit(uint(ids[i]) * p.row_bytes, u, q, d, m);
    uint base = i * p.cols + u * 32u;
    for (uint k = 0u; k < 8u; k++) {
        vec4 v = q[k] * d + m;
        y[base + 4u * k] = v.x;
        y[base + 4u * k + 1u] = v.y;
        y[base + 4u * k + 2u] = v.z;
        y[base + 4u * k + 3u] = v.w;
    }
#endif
}
