// What every kernel shares, in the kernel dialect (see ../render.py): raw GGUF bytes, f16/bf16
// rounding, ggml's activation functions, and the decoding of one 32-value unit of each weight type.
// A dialect's prelude defines the types (u8, i8, u16, u32, i32, acc_t), the qualifiers (KERNEL,
// GLOBAL, PRIVATE, DEVICE, SHARED), BARRIER(), GROUP_ID(d), LOCAL_ID(0), F32_BITS/BITS_F32,
// f16_to_f32/f32_to_f16 and C's float math names (expf, sqrtf, rintf, fmaxf, tanhf, fmaf...).

// Every kernel runs in workgroups of 64 work-items.
#define WG 64u
// mul_mat computes up to this many tokens per weight read (a prompt's tile)
#define MAX_TILE 8u
#define NEG_INF BITS_F32(0xFF800000u)

// How a weight type meets its activations: FLOAT types decode to final values and meet the
// activations rounded to their vec-dot type (f16, bf16) or as they are; LEGACY blocks decode to
// integer quants q, a scale d and a minimum m, and meet 8-bit activations (q8_1: per 32 values,
// quants, d and the sum s) block by block with exact integer sums; K quants decode to final values
// and meet q8_K activations (quants, one d per 256 values).
#define KIND_FLOAT 0
#define KIND_LEGACY 1
#define KIND_K 2
#define KIND_f32 KIND_FLOAT
#define KIND_f16 KIND_FLOAT
#define KIND_bf16 KIND_FLOAT
#define KIND_q4_0 KIND_LEGACY
#define KIND_q4_1 KIND_LEGACY
#define KIND_q5_0 KIND_LEGACY
#define KIND_q5_1 KIND_LEGACY
#define KIND_q8_0 KIND_LEGACY
#define KIND_q2_k KIND_K
#define KIND_q3_k KIND_K
#define KIND_q4_k KIND_K
#define KIND_q5_k KIND_K
#define KIND_q6_k KIND_K

DEVICE u32 rd_u16(GLOBAL const u8* w, u32 off) {
    return (u32)w[off] | ((u32)w[off + 1u] << 8);
}

DEVICE u32 rd_u32(GLOBAL const u8* w, u32 off) {
    return rd_u16(w, off) | (rd_u16(w, off + 2u) << 16);
}

DEVICE float rd_f16(GLOBAL const u8* w, u32 off) {
    return f16_to_f32((u16)rd_u16(w, off));
}

DEVICE float round_f16(float value) {
    return f16_to_f32(f32_to_f16(value));
}

// ggml_compute_fp32_to_bf16: nearest even on the float's bits, NaNs kept quiet
DEVICE float round_bf16(float value) {
    u32 bits = F32_BITS(value);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
        return BITS_F32((bits | 0x00400000u) & 0xFFFF0000u);
    }
    return BITS_F32((bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u);
}

// ggml_v_expf, the form llama.cpp's x86 build uses (softmax, silu), operation for operation:
// exp(x) = 2^n * p(b) with n = round(x / ln 2) and b = x - n ln 2 in two parts, fmaf fused
DEVICE float expf_ggml(float x) {
    const float r = 12582912.0f;  // 0x1.8p23
    float z = fmaf(x, BITS_F32(0x3fb8aa3bu), r);
    float n = z - r;
    float b = fmaf(-n, BITS_F32(0x35bfbe8eu), fmaf(-n, BITS_F32(0x3f317200u), x));
    float u = b * b;
    float j = fmaf(fmaf(fmaf(BITS_F32(0x3c072010u), b, BITS_F32(0x3d2b9f17u)), u,
                        fmaf(BITS_F32(0x3e2aaf33u), b, BITS_F32(0x3efffedbu))),
                   u, fmaf(BITS_F32(0x3f7ffff6u), b, 1.0f));
    if (fabsf(n) > 192.0f) {
        return n <= 0.0f ? 0.0f : BITS_F32(0x7f800000u);
    }
    return ldexpf(j, (i32)n);
}

// ggml's silu: x / (1 + exp(-x)) with its expf
DEVICE float silu(float x) {
    return x / (1.0f + expf_ggml(-x));
}

// ggml's GELU as its CPU backend computes it: the tanh form at the f16 value of x, the result
// rounded to f16 (its lookup table); x >= 10 passes through, x <= -10 gives 0
DEVICE float gelu(float x) {
    if (x >= 10.0f) {
        return x;
    }
    if (x <= -10.0f) {
        return 0.0f;
    }
    float h = round_f16(x);
    return round_f16(0.5f * h * (1.0f + tanhf(0.7978845608028654f * h * (1.0f + 0.044715f * h * h))));
}

// -- the 32 values of unit u of a row (which starts at byte `row`): q[k] * d + m -------------------

DEVICE void unit_f32(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    GLOBAL const float* p = (GLOBAL const float*)(w + row) + 32u * u;
    for (u32 k = 0u; k < 32u; k++) {
        q[k] = p[k];
    }
    *d = 1.0f;
    *m = 0.0f;
}

DEVICE void unit_f16(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    GLOBAL const u16* p = (GLOBAL const u16*)(w + row) + 32u * u;
    for (u32 k = 0u; k < 32u; k++) {
        q[k] = f16_to_f32(p[k]);
    }
    *d = 1.0f;
    *m = 0.0f;
}

DEVICE void unit_bf16(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    GLOBAL const u16* p = (GLOBAL const u16*)(w + row) + 32u * u;
    for (u32 k = 0u; k < 32u; k++) {
        q[k] = BITS_F32((u32)p[k] << 16);
    }
    *d = 1.0f;
    *m = 0.0f;
}

// block_q4_0: d, 16 bytes of nibbles (low nibbles are values 0-15, high ones 16-31), q - 8
DEVICE void unit_q4_0(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 18u * u;
    *d = rd_f16(w, blk);
    *m = 0.0f;
    for (u32 j = 0u; j < 16u; j++) {
        u32 b = w[blk + 2u + j];
        q[j] = (float)((i32)(b & 15u) - 8);
        q[j + 16u] = (float)((i32)(b >> 4) - 8);
    }
}

// block_q4_1: d, m, 16 bytes of nibbles
DEVICE void unit_q4_1(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 20u * u;
    *d = rd_f16(w, blk);
    *m = rd_f16(w, blk + 2u);
    for (u32 j = 0u; j < 16u; j++) {
        u32 b = w[blk + 4u + j];
        q[j] = (float)(b & 15u);
        q[j + 16u] = (float)(b >> 4);
    }
}

// block_q5_0: d, 32 high bits, 16 bytes of nibbles, q - 16
DEVICE void unit_q5_0(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 22u * u;
    *d = rd_f16(w, blk);
    *m = 0.0f;
    u32 qh = rd_u32(w, blk + 2u);
    for (u32 j = 0u; j < 16u; j++) {
        u32 b = w[blk + 6u + j];
        q[j] = (float)((i32)((b & 15u) | (((qh >> j) << 4) & 16u)) - 16);
        q[j + 16u] = (float)((i32)((b >> 4) | ((qh >> (j + 12u)) & 16u)) - 16);
    }
}

// block_q5_1: d, m, 32 high bits, 16 bytes of nibbles
DEVICE void unit_q5_1(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 24u * u;
    *d = rd_f16(w, blk);
    *m = rd_f16(w, blk + 2u);
    u32 qh = rd_u32(w, blk + 4u);
    for (u32 j = 0u; j < 16u; j++) {
        u32 b = w[blk + 8u + j];
        q[j] = (float)((b & 15u) | (((qh >> j) << 4) & 16u));
        q[j + 16u] = (float)((b >> 4) | ((qh >> (j + 12u)) & 16u));
    }
}

// block_q8_0: d, 32 signed bytes
DEVICE void unit_q8_0(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 34u * u;
    *d = rd_f16(w, blk);
    *m = 0.0f;
    for (u32 j = 0u; j < 32u; j++) {
        q[j] = (float)(i8)w[blk + 2u + j];
    }
}

// The K quants: 256-value blocks of eight units, decoded as ggml's dequantize_row_q*_K.

// block_q2_K: scales[16] (4-bit scale, 4-bit min), qs[64] (2 bits), d, dmin
DEVICE void unit_q2_k(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 84u * (u >> 3);
    u32 j = u & 7u;
    u32 half_ = j >> 2;
    u32 shift = 2u * (j & 3u);
    float dall = rd_f16(w, blk + 80u);
    float dmin = rd_f16(w, blk + 82u);
    for (u32 l = 0u; l < 32u; l++) {
        u32 sc = w[blk + 8u * half_ + 2u * (j & 3u) + (l >> 4)];
        float v = (float)((w[blk + 16u + 32u * half_ + l] >> shift) & 3u);
        q[l] = dall * (float)(sc & 15u) * v - dmin * (float)(sc >> 4);
    }
    *d = 1.0f;
    *m = 0.0f;
}

// block_q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scales), d
DEVICE void unit_q3_k(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 110u * (u >> 3);
    u32 j = u & 7u;
    u32 half_ = j >> 2;
    u32 shift = 2u * (j & 3u);
    u32 bit = 1u << (4u * half_ + (j & 3u));
    float dall = rd_f16(w, blk + 108u);
    for (u32 l = 0u; l < 32u; l++) {
        u32 s = 8u * half_ + 2u * (j & 3u) + (l >> 4);
        u32 low = (w[blk + 96u + (s & 7u)] >> (4u * (s >> 3))) & 15u;
        u32 high = (w[blk + 104u + (s & 3u)] >> (2u * (s >> 2))) & 3u;
        i32 scale = (i32)(low | (high << 4)) - 32;
        i32 v = (i32)((w[blk + 32u + 32u * half_ + l] >> shift) & 3u) - ((w[blk + l] & bit) != 0u ? 0 : 4);
        q[l] = (dall * (float)scale) * (float)v;
    }
    *d = 1.0f;
    *m = 0.0f;
}

// get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K/Q5_K block's 12 scale bytes
DEVICE void scale_min_k4(GLOBAL const u8* w, u32 scales, u32 j, PRIVATE u32* sc, PRIVATE u32* mn) {
    if (j < 4u) {
        *sc = w[scales + j] & 63u;
        *mn = w[scales + j + 4u] & 63u;
    } else {
        *sc = (w[scales + j + 4u] & 15u) | ((w[scales + j - 4u] >> 6) << 4);
        *mn = (w[scales + j + 4u] >> 4) | ((w[scales + j] >> 6) << 4);
    }
}

// block_q4_K: d, dmin, scales[12], qs[128] (units 2i and 2i+1 share 32 bytes: low, high nibbles)
DEVICE void unit_q4_k(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 144u * (u >> 3);
    u32 j = u & 7u;
    u32 sc, mn;
    scale_min_k4(w, blk + 4u, j, &sc, &mn);
    float d1 = rd_f16(w, blk) * (float)sc;
    float m1 = rd_f16(w, blk + 2u) * (float)mn;
    u32 shift = 4u * (j & 1u);
    for (u32 l = 0u; l < 32u; l++) {
        q[l] = d1 * (float)((w[blk + 16u + 32u * (j >> 1) + l] >> shift) & 15u) - m1;
    }
    *d = 1.0f;
    *m = 0.0f;
}

// block_q5_K: d, dmin, scales[12], qh[32] (bit j of byte l: the fifth bit of unit j's value l), qs[128]
DEVICE void unit_q5_k(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 176u * (u >> 3);
    u32 j = u & 7u;
    u32 sc, mn;
    scale_min_k4(w, blk + 4u, j, &sc, &mn);
    float d1 = rd_f16(w, blk) * (float)sc;
    float m1 = rd_f16(w, blk + 2u) * (float)mn;
    u32 shift = 4u * (j & 1u);
    for (u32 l = 0u; l < 32u; l++) {
        u32 v = ((w[blk + 48u + 32u * (j >> 1) + l] >> shift) & 15u) | (((w[blk + 16u + l] >> j) & 1u) << 4);
        q[l] = d1 * (float)v - m1;
    }
    *d = 1.0f;
    *m = 0.0f;
}

// block_q6_K: ql[128], qh[64], scales[16] (signed), d
DEVICE void unit_q6_k(GLOBAL const u8* w, u32 row, u32 u, PRIVATE float* q, PRIVATE float* d, PRIVATE float* m) {
    u32 blk = row + 210u * (u >> 3);
    u32 j = u & 7u;
    u32 half_ = j >> 2;
    u32 r = j & 3u;
    float dall = rd_f16(w, blk + 208u);
    for (u32 l = 0u; l < 32u; l++) {
        u32 lo = (w[blk + 64u * half_ + l + 32u * (r & 1u)] >> (4u * (r >> 1))) & 15u;
        u32 hi = (w[blk + 128u + 32u * half_ + l] >> (2u * r)) & 3u;
        float sc = (float)(i8)w[blk + 192u + 8u * half_ + (l >> 4) + 2u * r];
        q[l] = (dall * sc) * (float)((i32)(lo | (hi << 4)) - 32);
    }
    *d = 1.0f;
    *m = 0.0f;
}

// attention rounds the queries to f16 for an f16 cache, as ggml's vec_dot_f16
#define f16_ROUNDS_Q 1
#define f32_ROUNDS_Q 0
