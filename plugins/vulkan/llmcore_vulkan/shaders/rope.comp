#version 450
// Rotary embedding of x[n, heads, dim]: pair i < n_rot/2 of each head turns by the angle whose
// cos and sin the host wrote for the token's position (rope_cos_sin: ggml's running product of
// theta_scale, YaRN, the C library's cosf/sinf, times the magnitude scale), fused as ggml's build
// fuses them: fma(a, cos, -(b * sin)), fma(a, sin, b * cos). Normal mode pairs (2i, 2i+1), neox
// (i, i + n_rot/2); dims past n_rot pass through.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Table { float table[]; };  // cos[n][half_rot], then sin[n][half_rot]
layout(binding = 2) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint n; uint heads; uint dim; uint half_rot; uint neox; } p;
#include "common.glsl"

void main() {
    uint pairs = p.dim / 2u;
    uint idx = linear_group() * 256u + gl_LocalInvocationID.x;
    if (idx >= p.n * p.heads * pairs) {
        return;
    }
    uint i = idx % pairs;
    uint token = idx / (pairs * p.heads);
    uint base = (idx / pairs) * p.dim;
    if (i >= p.half_rot) {
        y[base + 2u * i] = x[base + 2u * i];
        y[base + 2u * i + 1u] = x[base + 2u * i + 1u];
        return;
    }
    float c = table[token * p.half_rot + i];
    float s = table[(p.n + token) * p.half_rot + i];
    uint i0 = p.neox != 0u ? i : 2u * i;
    uint i1 = p.neox != 0u ? i + p.half_rot : 2u * i + 1u;
    float a = x[base + i0];
    float b = x[base + i1];
    precise float bs = b * s;
    precise float bc = b * c;
    precise float y0 = FMA(a, c, -bs);
    precise float y1 = FMA(a, s, bc);
    y[base + i0] = y0;
    y[base + i1] = y1;
}
