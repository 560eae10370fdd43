#version 450
// softmax(q k^T * scale + mask) v over the first n_kv cache cells, one workgroup per
// (token, query head); query head h reads KV head h / group. As in the reference: q is rounded
// to f16, the softmax runs in f32 and the probabilities are rounded to f16 before meeting v.
// Pass 1 finds the row's max and sum (online, per lane, then merged); pass 2 recomputes the
// scores a chunk of 64 cells at a time and accumulates p * v, each lane owning head dims.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
#if defined(CACHE_F16)
#define CACHE_T uint
#else
#define CACHE_T float
#endif
layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer K { CACHE_T k[]; };
layout(binding = 2) readonly buffer V { CACHE_T v[]; };
layout(binding = 3) readonly buffer Mask { float mask[]; };
layout(binding = 4) readonly buffer Step { uint n_kv; } step;
layout(binding = 5) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params {
    uint n; uint n_head; uint head_dim; uint group; uint kv_width; uint mask_stride; float scale;
} p;
#include "common.glsl"

const uint MAX_HEAD_DIM = 256u;
const uint DIMS_PER_LANE = MAX_HEAD_DIM / 64u;
const float NEG_INF = -1.0 / 0.0;
shared float qs[MAX_HEAD_DIM];
shared float red_m[64];
shared float red_l[64];
shared float probs[64];

float score(uint token, uint cell, uint kv_off) {
    float s = 0.0;
#if defined(CACHE_F16)
    uint base = (cell * p.kv_width + kv_off) / 2u;
    for (uint d = 0u; d < p.head_dim / 2u; d++) {
        vec2 kk = unpackHalf2x16(k[base + d]);
        s += qs[2u * d] * kk.x + qs[2u * d + 1u] * kk.y;
    }
#else
    uint base = cell * p.kv_width + kv_off;
    for (uint d = 0u; d < p.head_dim; d++) {
        s += qs[d] * k[base + d];
    }
#endif
    return s * p.scale + mask[token * p.mask_stride + cell];
}

float value(uint cell, uint kv_off, uint d) {
#if defined(CACHE_F16)
    uint e = cell * p.kv_width + kv_off + d;
    vec2 pair = unpackHalf2x16(v[e / 2u]);
    return (e & 1u) == 0u ? pair.x : pair.y;
#else
    return v[cell * p.kv_width + kv_off + d];
#endif
}

// merges (max, sum of exp(s - max)) pairs; -inf maxima carry nothing
vec2 merge(vec2 a, vec2 b) {
    float m = max(a.x, b.x);
    if (m == NEG_INF) {
        return vec2(NEG_INF, 0.0);
    }
    return vec2(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

void main() {
    uint wg = linear_group();
    uint token = wg / p.n_head;
    uint head = wg % p.n_head;
    if (token >= p.n) {
        return;
    }
    uint t = gl_LocalInvocationID.x;
    uint kv_off = (head / p.group) * p.head_dim;
    uint q_base = (token * p.n_head + head) * p.head_dim;
    for (uint d = t; d < p.head_dim; d += 64u) {
        qs[d] = round_f16(q[q_base + d]);
    }
    barrier();
    uint n_kv = step.n_kv;

    vec2 ml = vec2(NEG_INF, 0.0);
    for (uint j = t; j < n_kv; j += 64u) {
        ml = merge(ml, vec2(score(token, j, kv_off), 1.0));
    }
    red_m[t] = ml.x;
    red_l[t] = ml.y;
    barrier();
    for (uint stride = 32u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            vec2 merged = merge(vec2(red_m[t], red_l[t]), vec2(red_m[t + stride], red_l[t + stride]));
            red_m[t] = merged.x;
            red_l[t] = merged.y;
        }
        barrier();
    }
    float row_max = red_m[0];
    float row_sum = red_l[0];

    float acc[DIMS_PER_LANE];
    for (uint k_ = 0u; k_ < DIMS_PER_LANE; k_++) {
        acc[k_] = 0.0;
    }
    for (uint c0 = 0u; c0 < n_kv; c0 += 64u) {
        uint j = c0 + t;
        probs[t] = j < n_kv ? round_f16(exp(score(token, j, kv_off) - row_max) / row_sum) : 0.0;
        barrier();
        uint count = min(64u, n_kv - c0);
        for (uint jj = 0u; jj < count; jj++) {
            float pj = probs[jj];
            for (uint k_ = 0u; k_ < DIMS_PER_LANE; k_++) {
                uint d = t + 64u * k_;
                if (d < p.head_dim) {
                    acc[k_] += pj * value(c0 + jj, kv_off, d);
                }
            }
        }
        barrier();
    }
    uint out_base = (token * p.n_head + head) * p.head_dim;
    for (uint k_ = 0u; k_ < DIMS_PER_LANE; k_++) {
        uint d = t + 64u * k_;
        if (d < p.head_dim) {
            y[out_base + d] = acc[k_];
        }
    }
}
