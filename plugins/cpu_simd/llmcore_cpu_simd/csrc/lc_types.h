/* Shared C interface of the cpu_simd plugin: ggml-style type traits and block layouts.
 * The kernels of every weight type (vec_dot, dequant_row) and the activation quantizers plug in
 * here; the graph executor only ever calls through lc_traits[] and lc_quantize_row. The block
 * between the cffi-cdef markers is declared to cffi as it is (llmcore_cpu_simd/library.py). */
#ifndef LC_TYPES_H
#define LC_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* cffi-cdef: begin */
/* GGML type ids (gguf.GGMLQuantizationType values) */
enum {
    LC_TYPE_F32 = 0, LC_TYPE_F16 = 1, LC_TYPE_Q4_0 = 2, LC_TYPE_Q4_1 = 3,
    LC_TYPE_Q5_0 = 6, LC_TYPE_Q5_1 = 7, LC_TYPE_Q8_0 = 8, LC_TYPE_Q8_1 = 9,
    LC_TYPE_Q2_K = 10, LC_TYPE_Q3_K = 11, LC_TYPE_Q4_K = 12, LC_TYPE_Q5_K = 13,
    LC_TYPE_Q6_K = 14, LC_TYPE_Q8_K = 15, LC_TYPE_IQ2_XXS = 16, LC_TYPE_IQ2_XS = 17, LC_TYPE_IQ3_XXS = 18,
    LC_TYPE_IQ1_S = 19, LC_TYPE_IQ4_NL = 20, LC_TYPE_IQ3_S = 21, LC_TYPE_IQ2_S = 22, LC_TYPE_IQ4_XS = 23,
    LC_TYPE_IQ1_M = 29, LC_TYPE_BF16 = 30, LC_TYPE_TQ1_0 = 34, LC_TYPE_TQ2_0 = 35, LC_TYPE_MXFP4 = 39,
    LC_TYPE_NVFP4 = 40, LC_TYPE_Q1_0 = 41, LC_TYPE_Q2_0 = 42,
    LC_TYPE_COUNT = 43
};

/* one entry per GGML type id (gguf.GGMLQuantizationType values), ggml-style type traits */
typedef void (*lc_quantize_row_fn)(const float *x, void *y, int64_t n);              /* activations -> vec_dot_type blocks */
typedef void (*lc_vec_dot_fn)(int n, float *s, const void *w_row, const void *x_row); /* dot of one weight row with one quantized activation row (n elements) */
typedef void (*lc_dequant_row_fn)(const void *w_row, float *y, int64_t n);            /* for get_rows */
typedef struct {
    int block_size; size_t type_size;  /* elements per block, bytes per block (of the WEIGHT type) */
    int vec_dot_type;                  /* GGML type id of the activation format (Q8_0=8, Q8_1=9, Q8_K=15, F16=1, F32=0, BF16=30) */
    lc_vec_dot_fn vec_dot; lc_dequant_row_fn dequant_row;
} lc_type_traits;

extern const lc_type_traits lc_traits[LC_TYPE_COUNT]; /* indexed by GGML type id; NULL vec_dot = unsupported */
void lc_quantize_row(int vec_dot_type, const float *x, void *y, int64_t n);

/* The one-token product's path per weight type (traits.c): a type with a several-row GEMV takes it,
 * asking for its bytes ahead, unless lc_set_one_token_path chose the GEMV asking for them farther
 * ahead (lc_prefetch_ahead_bytes), the GEMV leaving the prefetching to the hardware, or vec_dot row by
 * row (the plugin times them at first use on each CPU: which one streams fastest depends on the CPU's
 * prefetchers and memory latency); all give the same bits. */
enum { LC_ONE_TOKEN_GEMV = 0, LC_ONE_TOKEN_GEMV_HARDWARE_PREFETCH = 1, LC_ONE_TOKEN_ROW_BY_ROW = 2,
       LC_ONE_TOKEN_GEMV_FAR_PREFETCH = 3 };
int lc_has_one_token_gemv(int type);
void lc_set_one_token_path(int type, int path);
/* cffi-cdef: end */

typedef uint16_t lc_fp16_t;
typedef uint16_t lc_bf16_t;

/* ggml block layouts (ggml-common.h) */
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct { lc_fp16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { lc_fp16_t d; lc_fp16_t m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { lc_fp16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { lc_fp16_t d; lc_fp16_t m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { lc_fp16_t d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { lc_fp16_t d; lc_fp16_t s; int8_t qs[QK8_1]; } block_q8_1; /* s = f16(d * sum(qs)) */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; lc_fp16_t d; lc_fp16_t dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; lc_fp16_t d; } block_q3_K;
typedef struct { lc_fp16_t d; lc_fp16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { lc_fp16_t d; lc_fp16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; lc_fp16_t d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

/* fp16 <-> fp32 conversions shared by all kernels (IEEE round-to-nearest-even, as ggml/F16C) */
static inline float lc_fp16_to_fp32(lc_fp16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    union { uint32_t u; float f; } a, b, r;
    a.u = (two_w >> 4) + exp_offset;
    const float normalized = a.f * 0x1.0p-112f;
    b.u = (two_w >> 17) | (126u << 23);
    const float denormalized = b.f - 0.5f;
    r.f = (two_w < (1u << 27)) ? denormalized : normalized;
    union { uint32_t u; float f; } n; n.f = r.f;
    n.u = sign | n.u;
    return n.f;
}

static inline lc_fp16_t lc_fp32_to_fp16(float f) {
    union { float f; uint32_t u; } in, base, bias_u;
    in.f = f;
    const uint32_t w = in.u;
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    union { uint32_t u; float f; } s1, s2;
    s1.u = 0x77800000u; /* 0x1.0p+112f */
    s2.u = 0x08800000u; /* 0x1.0p-110f */
    float fa = in.f < 0 ? -in.f : in.f;
    base.f = (fa * s1.f) * s2.f;
    bias_u.u = (bias >> 1) + 0x07800000u;
    base.f = bias_u.f + base.f;
    const uint32_t bits = base.u;
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (lc_fp16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float lc_bf16_to_fp32(lc_bf16_t h) {
    union { uint32_t u; float f; } r; r.u = (uint32_t)h << 16; return r.f;
}

/* seconds on the monotonic clock (LLMCORE_PROFILE, the one-token paths timed at first use) */
static inline double lc_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
