#version 450
// y[t, r] = dot(w[r, :], x[t, :]) for `rows` weight rows and `n` tokens.
// A workgroup of 64 takes 64 / LANES rows x TOKENS tokens: LANES invocations per row stride over
// the row's 32-value units, each unit decoded once and used for every token of the tile
// (TOKENS = 1 is the matrix-vector path of single-token steps, larger tiles serve prompts).
// x is what the quantize shader prepared for the weight type (see quantize.comp), bound twice:
// as vec4 for the values and as float for the block scales. For the legacy quants the block sum
// of integer quants is exact in float and is scaled by both block scales, plus the weight
// minimum times the activation block's s, as in ggml's vec_dot_q4_1_q8_1.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TOKENS = 1u;
layout(constant_id = 1) const uint LANES = 16u;
layout(binding = 0) readonly buffer Weights { uint w[]; };
layout(binding = 1) readonly buffer X { vec4 x4[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(binding = 3) readonly buffer XScales { float xf[]; };
layout(push_constant) uniform Params { uint rows; uint cols; uint n; uint row_bytes; uint d_off; uint s_off; } p;
#include "common.glsl"
#include "quants.glsl"

shared float partial[64u * TOKENS];

#if defined(LEGACY_QUANT) && defined(EXACT_FMA)
// llama.cpp's order (ggml's vec_dot and tinyBLAS on x86): per output 8 float lanes, lane l taking
// values 4l..4l+3 of every block, fused into its running sum as (d_w * d_x) * exact integer sum;
// the lanes' hsum ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)); then the weight minimum times the
// activation block's s, summed block after block. With LANES 8 (GPUs) invocation `lane` is that
// lane; with LANES 1 (CPU devices, where an invocation is a SIMD lane and the shared-memory
// hand-over and barrier cost more than the sums) an invocation keeps a row's 8 lanes itself.

void store_exact(float a[8], float summ, uint t, uint row) {
    precise float h = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    precise float out_ = h + summ;
    y[t * p.rows + row] = out_;
}

void exact_row_per_invocation() {
    uint row = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
    if (row >= p.rows) {
        return;
    }
    uint t0 = gl_WorkGroupID.y * TOKENS;
    uint units = p.cols / 32u;
    uint row_off = row * p.row_bytes;
    float acc[8u * TOKENS];
    float summ[TOKENS];
    for (uint c = 0u; c < TOKENS; c++) {
        summ[c] = 0.0;
        for (uint l = 0u; l < 8u; l++) {
            acc[c * 8u + l] = 0.0;
        }
    }
    for (uint u = 0u; u < units; u++) {
        vec4 q[8];
        float d, m;
        load_unit(row_off, u, q, d, m);
        for (uint c = 0u; c < TOKENS; c++) {
            uint t = min(t0 + c, p.n - 1u);  // a partial tile repeats its last token, never stored
            uint blk = t * units + u;
            uint xb = (t * p.cols + u * 32u) / 4u;
            precise float scale = d * xf[p.d_off + blk];
            for (uint l = 0u; l < 8u; l++) {
                float isum = dot(q[l], x4[xb + l]);  // integers: exact
                acc[c * 8u + l] = FMA(scale, isum, acc[c * 8u + l]);
            }
            precise float ms = m * xf[p.s_off + blk];
            precise float next = summ[c] + ms;
            summ[c] = next;
        }
    }
    for (uint c = 0u; c < TOKENS && t0 + c < p.n; c++) {
        float a[8];
        for (uint l = 0u; l < 8u; l++) {
            a[l] = acc[c * 8u + l];
        }
        store_exact(a, summ[c], t0 + c, row);
    }
}

void exact_lane_per_invocation() {
    uint local = gl_LocalInvocationID.x;
    uint lane = local % 8u;
    uint row = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 8u + local / 8u;
    uint t0 = gl_WorkGroupID.y * TOKENS;
    uint units = p.cols / 32u;
    float acc[TOKENS];
    float summ[TOKENS];
    for (uint c = 0u; c < TOKENS; c++) {
        acc[c] = 0.0;
        summ[c] = 0.0;
    }
    if (row < p.rows) {
        uint row_off = row * p.row_bytes;
        for (uint u = 0u; u < units; u++) {
            vec4 q;
            float d, m;
            load_lane(row_off, u, lane, q, d, m);
            for (uint c = 0u; c < TOKENS; c++) {
                uint t = min(t0 + c, p.n - 1u);  // a partial tile repeats its last token, never stored
                uint blk = t * units + u;
                float isum = dot(q, x4[(t * p.cols + u * 32u) / 4u + lane]);  // integers: exact
                precise float scale = d * xf[p.d_off + blk];
                acc[c] = FMA(scale, isum, acc[c]);
                precise float ms = m * xf[p.s_off + blk];
                precise float next = summ[c] + ms;
                summ[c] = next;
            }
        }
    }
    for (uint c = 0u; c < TOKENS; c++) {
        partial[local * TOKENS + c] = acc[c];
    }
    barrier();
    if (lane == 0u && row < p.rows) {
        for (uint c = 0u; c < TOKENS && t0 + c < p.n; c++) {
            float a[8];
            for (uint l = 0u; l < 8u; l++) {
                a[l] = partial[(local + l) * TOKENS + c];
            }
            store_exact(a, summ[c], t0 + c, row);
        }
    }
}

void main() {
    if (LANES == 1u) {  // a specialization constant: the driver keeps one of the two
        exact_row_per_invocation();
    } else {
        exact_lane_per_invocation();
    }
}
#else
void main() {
    uint local = gl_LocalInvocationID.x;
    uint lane = local % LANES;
    uint row = (gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x) * (64u / LANES) + local / LANES;
    uint t0 = gl_WorkGroupID.y * TOKENS;
    uint units = p.cols / 32u;
    float acc[TOKENS];
    for (uint c = 0u; c < TOKENS; c++) {
        acc[c] = 0.0;
    }
    if (row < p.rows) {
        uint row_off = row * p.row_bytes;
        for (uint u = lane; u < units; u += LANES) {
            vec4 q[8];
            float d, m;
            load_unit(row_off, u, q, d, m);
            for (uint c = 0u; c < TOKENS; c++) {
                uint t = min(t0 + c, p.n - 1u);  // a partial tile repeats its last token, never stored
                uint xb = (t * p.cols + u * 32u) / 4u;
                float dot_ = 0.0;
                for (uint k = 0u; k < 8u; k++) {
                    dot_ += dot(q[k], x4[xb + k]);
                }
#if defined(LEGACY_QUANT)
                uint blk = t * units + u;
                acc[c] += dot_ * (d * xf[p.d_off + blk]) + m * xf[p.s_off + blk];
#elif defined(K_QUANT)
                acc[c] += dot_ * xf[p.d_off + t * (p.cols / 256u) + u / 8u];
#else
                acc[c] += dot_;
#endif
            }
        }
    }
    for (uint c = 0u; c < TOKENS; c++) {
        partial[local * TOKENS + c] = acc[c];
    }
    barrier();
    for (uint stride = LANES / 2u; stride > 0u; stride >>= 1) {
        if (lane < stride) {
            for (uint c = 0u; c < TOKENS; c++) {
                partial[local * TOKENS + c] += partial[(local + stride) * TOKENS + c];
            }
        }
        barrier();
    }
    if (lane == 0u && row < p.rows) {
        for (uint c = 0u; c < TOKENS; c++) {
            if (t0 + c < p.n) {
                y[(t0 + c) * p.rows + row] = partial[local * TOKENS + c];
            }
        }
    }
}
#endif
