#version 450
// softmax(q k^T * scale + mask) v over the first n_kv cache cells, one workgroup per (token, query
// head); query head h reads KV head h / group. Value for value what llama.cpp's CPU build computes
// without flash attention (the reference backend and cpu_simd do the same):
// - q is rounded to f16; a query beside another token of its own sequence in the batch takes
//   tinyBLAS's order (16 lanes over the head's dims, fused, then _mm512_reduce_add_ps's tree), a
//   query alone ggml_vec_dot_f16's (64 lanes, then (l + l+32) + (l+16 + l+48), then the tree);
//   with f32 caches q is not rounded and every query takes ggml_vec_dot_f32's order (the same 64
//   lanes: ggml skips tinyBLAS for a q that already has K's type), dims past 64 fused in float;
// - the softmax exponentials are ggml's expf, summed 16 cells at a time by the same tree, each
//   group's sum added in order in double (ACC_F64; float on devices without shaderFloat64); the
//   probabilities are scaled by float(1 / sum) and rounded to f16 (f32 caches: not rounded);
// - the V sums keep cell j in lane j % 16 (tinyBLAS) or j % 64 (vec_dot_f16), then reduce as above.
// The scores are recomputed in each pass (max, sums, V) instead of being stored.
#extension GL_GOOGLE_include_directive : require
#if defined(ACC_F64)
#define ACC double
#else
#define ACC float
#endif
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
#include "activations.glsl"
#if defined(CACHE_F16)
#define CACHE_FMA fma  // products of two f16 values are exact: any fma rounds once
#else
#define CACHE_FMA FMA  // f32 products are not: the fused rounding llama.cpp's CPU build has
#endif

const uint MAX_HEAD_DIM = 256u;
const float NEG_INF = -1.0 / 0.0;
shared float qs[MAX_HEAD_DIM];
shared float chunk[64];      // one value per cell of the current chunk of 64 cells
shared float red[64];
shared int visible_from[3];  // first visible cell of the rows token-1, token, token+1 (-1: none)

float cache_at(uint cell, uint kv_off, uint d, bool is_v) {
    uint e = cell * p.kv_width + kv_off + d;
#if defined(CACHE_F16)
    vec2 pair = unpackHalf2x16(is_v ? v[e / 2u] : k[e / 2u]);
    return (e & 1u) == 0u ? pair.x : pair.y;
#else
    return is_v ? v[e] : k[e];
#endif
}

// _mm512_reduce_add_ps in GCC's order
float reduce16(float a[16]) {
    precise float t3[8];
    for (uint i = 0u; i < 8u; i++) {
        t3[i] = a[i + 8u] + a[i];
    }
    precise float t6[4];
    for (uint i = 0u; i < 4u; i++) {
        t6[i] = t3[i + 4u] + t3[i];
    }
    precise float r = (t6[0] + t6[2]) + (t6[1] + t6[3]);
    return r;
}

// 64 lanes as ggml_vec_dot_f16 leaves them: (l + l+32) + (l+16 + l+48), then the tree
float reduce64(float a[64]) {
    precise float s16[16];
    for (uint l = 0u; l < 16u; l++) {
        s16[l] = (a[l] + a[l + 32u]) + (a[l + 16u] + a[l + 48u]);
    }
    return reduce16(s16);
}

float dot_kq(uint cell, uint kv_off, bool batched) {
    if (batched) {
        precise float lane[16];
        for (uint l = 0u; l < 16u; l++) {
            lane[l] = 0.0;
        }
        for (uint i = 0u; i < p.head_dim; i += 16u) {
            for (uint l = 0u; l < 16u && i + l < p.head_dim; l++) {
                lane[l] = CACHE_FMA(cache_at(cell, kv_off, i + l, false), qs[i + l], lane[l]);
            }
        }
        return reduce16(lane);
    }
    precise float lane[64];
    for (uint l = 0u; l < 64u; l++) {
        lane[l] = 0.0;
    }
    uint np = p.head_dim & ~63u;
    for (uint i = 0u; i < np; i += 64u) {
        for (uint l = 0u; l < 64u; l++) {
            lane[l] = CACHE_FMA(cache_at(cell, kv_off, i + l, false), qs[i + l], lane[l]);
        }
    }
    float sum = reduce64(lane);
    if (np == p.head_dim) {
        return sum;
    }
#if !defined(CACHE_F16)
    for (uint i = np; i < p.head_dim; i++) {  // ggml_vec_dot_f32's leftovers, fused in float
        sum = CACHE_FMA(cache_at(cell, kv_off, i, false), qs[i], sum);
    }
    return sum;
#endif
    ACC total = ACC(sum);  // dims past a multiple of 64, added in ggml_float
    for (uint i = np; i < p.head_dim; i++) {
        precise float prod = cache_at(cell, kv_off, i, false) * qs[i];
        total += ACC(prod);
    }
    return float(total);
}

float score(uint token, uint cell, uint kv_off, bool batched) {
    float m = mask[token * p.mask_stride + cell];
    if (m == NEG_INF) {
        return NEG_INF;
    }
#if defined(CACHE_F16)
    precise float s = dot_kq(cell, kv_off, batched) * p.scale;
#else
    precise float s = dot_kq(cell, kv_off, false) * p.scale;
#endif
    precise float r = s + m;
    return r;
}

int first_visible(uint token, uint n_kv) {
    for (uint j = 0u; j < n_kv; j++) {
        if (mask[token * p.mask_stride + j] != NEG_INF) {
            return int(j);
        }
    }
    return -1;
}

void main() {
    uint wg = linear_group();
    uint token = wg / p.n_head;
    uint head = wg % p.n_head;
    if (token >= p.n) {
        return;
    }
    uint t = gl_LocalInvocationID.x;
    uint n_kv = step.n_kv;
    uint kv_off = (head / p.group) * p.head_dim;
    uint q_base = (token * p.n_head + head) * p.head_dim;
    for (uint d = t; d < p.head_dim; d += 64u) {
#if defined(CACHE_F16)
        qs[d] = round_f16(q[q_base + d]);
#else
        qs[d] = q[q_base + d];
#endif
    }
    if (t < 3u) {
        uint row = token + t;  // token - 1 + t, kept unsigned
        visible_from[t] = (row >= 1u && row - 1u < p.n) ? first_visible(row - 1u, n_kv) : -2;
    }
    barrier();
    // tinyBLAS's order when another token of the same sequence shares the batch
    bool batched = visible_from[0] == visible_from[1] || visible_from[2] == visible_from[1];

    float row_max = NEG_INF;
    for (uint j = t; j < n_kv; j += 64u) {
        row_max = max(row_max, score(token, j, kv_off, batched));
    }
    red[t] = row_max;
    barrier();
    for (uint stride = 32u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            red[t] = max(red[t], red[t + stride]);
        }
        barrier();
    }
    row_max = red[0];
    barrier();
    uint out_base = (token * p.n_head + head) * p.head_dim;
    if (row_max == NEG_INF) {  // nothing visible: a padding row
        for (uint d = t; d < p.head_dim; d += 64u) {
            y[out_base + d] = 0.0;
        }
        return;
    }

    // ggml_vec_soft_max_f32: sixteen exponentials at a time, each group's float sum added in order
    ACC sum = 0.0;
    for (uint c0 = 0u; c0 < n_kv; c0 += 64u) {
        uint j = c0 + t;
        float s = j < n_kv ? score(token, j, kv_off, batched) : NEG_INF;
        chunk[t] = s == NEG_INF ? 0.0 : expf_ggml(s - row_max);
        barrier();
        if (t < 4u) {
            float group_[16];
            for (uint l = 0u; l < 16u; l++) {
                group_[l] = chunk[16u * t + l];
            }
            red[t] = reduce16(group_);
        }
        barrier();
        for (uint g = 0u; g < 4u; g++) {
            sum += ACC(red[g]);
        }
        barrier();
    }
    float inv = float(ACC(1.0) / sum);

    // the V sums: invocation t owns dims t, t + 64, ...; lanes by cell index
    const uint MAX_DIMS = MAX_HEAD_DIM / 64u;
    float lane16[MAX_DIMS][16];
    float lane64[MAX_DIMS][64];
    for (uint k_ = 0u; k_ < MAX_DIMS; k_++) {
        for (uint l = 0u; l < 16u; l++) {
            lane16[k_][l] = 0.0;
        }
        for (uint l = 0u; l < 64u; l++) {
            lane64[k_][l] = 0.0;
        }
    }
    for (uint c0 = 0u; c0 < n_kv; c0 += 64u) {
        uint j = c0 + t;
        float s = j < n_kv ? score(token, j, kv_off, batched) : NEG_INF;
        precise float e = s == NEG_INF ? 0.0 : expf_ggml(s - row_max);
        precise float pr = e * inv;
#if defined(CACHE_F16)
        chunk[t] = round_f16(pr);
#else
        chunk[t] = pr;
#endif
        barrier();
        uint count = min(64u, n_kv - c0);
        for (uint k_ = 0u; k_ < MAX_DIMS; k_++) {
            uint d = t + 64u * k_;
            if (d >= p.head_dim) {
                break;
            }
            for (uint jj = 0u; jj < count; jj++) {
                uint cell = c0 + jj;
                float vv = cache_at(cell, kv_off, d, true);
                if (batched) {
                    lane16[k_][cell % 16u] = CACHE_FMA(vv, chunk[jj], lane16[k_][cell % 16u]);
                } else {
                    lane64[k_][cell % 64u] = CACHE_FMA(vv, chunk[jj], lane64[k_][cell % 64u]);
                }
            }
        }
        barrier();
    }
    for (uint k_ = 0u; k_ < MAX_DIMS; k_++) {
        uint d = t + 64u * k_;
        if (d < p.head_dim) {
            y[out_base + d] = batched ? reduce16(lane16[k_]) : reduce64(lane64[k_]);
        }
    }
}
