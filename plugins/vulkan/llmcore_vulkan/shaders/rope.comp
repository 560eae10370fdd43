#version 450
// Rotary embedding of x[n, heads, dim]: pair i < n_rot/2 of each head turns by
// theta = mix(freq_scale * p * freq[i], p * freq[i], ramp[i]) (ggml's YaRN; ramp is 0 without it),
// scaled by mscale. The per-dimension tables are computed on the host exactly as the reference
// does (ggml's running product of theta_scale). Normal mode pairs (2i, 2i+1), neox (i, i + n_rot/2).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Pos { int pos[]; };
layout(binding = 2) readonly buffer Table { float table[]; };  // freq[half], ramp[half]
layout(binding = 3) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params {
    uint n; uint heads; uint dim; uint half_rot; uint neox; float freq_scale; float mscale;
} p;
#include "common.glsl"

// sin/cos are only accurate near zero on many devices: reduce by 2*pi in two steps (Cody-Waite);
// `precise` keeps the compiler from folding the steps back into one.
vec2 cos_sin(float theta) {
    const float TWO_PI_HI = 6.28125;  // few mantissa bits: k * TWO_PI_HI is exact
    const float TWO_PI_LO = 0.0019353071795864769;
    float k = roundEven(theta * 0.15915494309189535);
    precise float high = theta - k * TWO_PI_HI;
    precise float r = high - k * TWO_PI_LO;
    return vec2(cos(r), sin(r));
}

void main() {
    uint pairs = p.dim / 2u;
    uint idx = linear_group() * 256u + gl_LocalInvocationID.x;
    if (idx >= p.n * p.heads * pairs) {
        return;
    }
    uint i = idx % pairs;
    uint token = idx / (pairs * p.heads);
    uint base = (idx / pairs) * p.dim;
    if (i >= p.half_rot) {  // dims past n_rot pass through
        y[base + 2u * i] = x[base + 2u * i];
        y[base + 2u * i + 1u] = x[base + 2u * i + 1u];
        return;
    }
    // precise: each product rounded on its own, as the reference's numpy computes the angle
    precise float extrap = float(pos[token]) * table[i];
    precise float interp = p.freq_scale * extrap;
    float ramp = table[p.half_rot + i];
    precise float theta = interp * (1.0 - ramp) + extrap * ramp;
    vec2 cs = cos_sin(theta) * p.mscale;
    uint i0 = p.neox != 0u ? i : 2u * i;
    uint i1 = p.neox != 0u ? i + p.half_rot : 2u * i + 1u;
    float a = x[base + i0];
    float b = x[base + i1];
    y[base + i0] = a * cs.x - b * cs.y;
    y[base + i1] = a * cs.y + b * cs.x;
}
