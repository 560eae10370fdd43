/* llmcore's block quantizers: ggml's reference quantizers (ggml-quants.c of llama.cpp 0.3.36, ported
 * in ggml_quants.c), their block layouts and fp16/bf16 conversions, and the entry points Python
 * calls (api.c), which llmcore/quants/__init__.py declares to ctypes (_SIGNATURES). */
#ifndef LQ_QUANTS_H
#define LQ_QUANTS_H

#include <stddef.h>
#include <stdint.h>

/* Quantize nrows rows of n_per_row floats into dst as ggml_quantize_chunk does (type: a ggml type
 * id; imatrix: n_per_row importance weights, or NULL). Returns the bytes written, 0 for a type
 * this library does not quantize or a row length that is not a multiple of its block. */
size_t lq_quantize_rows(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix);
/* lq_to_float's conversion of nrows rows of src_type, then lq_quantize_rows' to dst_type, through a
 * float32 buffer of its own. Returns the bytes written, 0 when either type is not handled. */
size_t lq_convert_rows(int src_type, const void *src, int dst_type, void *dst, int64_t nrows, int64_t n_per_row,
                       const float *imatrix);
/* Convert n values of a tensor of ggml type `type` to float32 as ggml's to_float does (F16, BF16
 * and the types lq_quantize_rows writes). Returns 0 for a type it cannot convert, else 1. */
int lq_to_float(int type, const void *src, float *dst, int64_t n);
/* 1 when every fp16 scale of the n bytes of quantized data is finite (ggml_validate_row_data for
 * the types above), else 0. */
int lq_validate(int type, const void *data, size_t n_bytes);

#define GGML_RESTRICT restrict
#define GGML_UNUSED(x) (void)(x)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define GGML_ASSERT(x) do { if (!(x)) __builtin_trap(); } while (0)
#define GGML_ABORT(...) __builtin_trap()

/* ggml.h's type ids for the types quantized here */
enum ggml_type {
    GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6, GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q2_K = 10, GGML_TYPE_Q3_K = 11, GGML_TYPE_Q4_K = 12, GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14, GGML_TYPE_BF16 = 30, GGML_TYPE_TQ1_0 = 34, GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_IQ2_XXS = 16, GGML_TYPE_IQ2_XS = 17, GGML_TYPE_IQ3_XXS = 18, GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20, GGML_TYPE_IQ3_S = 21, GGML_TYPE_IQ2_S = 22, GGML_TYPE_IQ4_XS = 23, GGML_TYPE_IQ1_M = 29, GGML_TYPE_MXFP4 = 39, GGML_TYPE_Q1_0 = 41, GGML_TYPE_Q2_0 = 42,
};

/* ggml-common.h's block layouts */
typedef uint16_t ggml_half;
typedef uint16_t ggml_fp16_t;
typedef struct { uint16_t bits; } ggml_bf16_t;

#define QK_K 256
#define K_SCALE_SIZE 12
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK1_0 128
#define QK2_0 64
#define QK_MXFP4 32
#define QK4_NL 32

typedef struct { ggml_half d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { ggml_half d; ggml_half m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { ggml_half d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { ggml_half d; ggml_half m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { ggml_half d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { ggml_half d; uint8_t qs[QK1_0 / 8]; } block_q1_0;
typedef struct { ggml_half d; uint8_t qs[QK2_0 / 4]; } block_q2_0;
typedef struct { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; } block_mxfp4;
typedef struct { uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; ggml_half d; } block_tq1_0;
typedef struct { uint8_t qs[QK_K / 4]; ggml_half d; } block_tq2_0;
typedef struct { ggml_half d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;
typedef struct { ggml_half d; uint16_t qs[QK_K / 8]; uint8_t scales[QK_K / 32]; } block_iq2_xs;
typedef struct { ggml_half d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; } block_iq2_s;
typedef struct { ggml_half d; uint8_t qs[3 * QK_K / 8]; } block_iq3_xxs;
#define IQ3S_N_SCALE QK_K / 64
typedef struct {
    ggml_half d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t signs[QK_K / 8]; uint8_t scales[IQ3S_N_SCALE];
} block_iq3_s;
typedef struct { ggml_half d; uint8_t qs[QK_K / 8]; uint16_t qh[QK_K / 32]; } block_iq1_s;
typedef struct { uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; uint8_t scales[QK_K / 32]; } block_iq1_m;
typedef union { ggml_half f16; uint16_t u16; } iq1m_scale_t;
typedef struct { ggml_half d; uint8_t qs[QK4_NL / 2]; } block_iq4_nl;
typedef struct { ggml_half d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } block_iq4_xs;
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; ggml_half d; ggml_half dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; ggml_half d; } block_q3_K;
typedef struct { ggml_half d; ggml_half dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct {
    ggml_half d; ggml_half dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; ggml_half d; } block_q6_K;

_Static_assert(sizeof(block_q4_1) == 20 && sizeof(block_q5_1) == 24 && sizeof(block_q2_K) == 84, "block padding");
_Static_assert(sizeof(block_q3_K) == 110 && sizeof(block_q4_K) == 144 && sizeof(block_q5_K) == 176, "block padding");
_Static_assert(sizeof(block_q6_K) == 210 && sizeof(block_q5_0) == 22 && sizeof(block_q8_0) == 34, "block padding");
_Static_assert(sizeof(block_q1_0) == 18 && sizeof(block_q2_0) == 18 && sizeof(block_mxfp4) == 17, "block padding");
_Static_assert(sizeof(block_tq1_0) == 54 && sizeof(block_tq2_0) == 66, "block padding");
_Static_assert(sizeof(block_iq4_nl) == 18 && sizeof(block_iq4_xs) == 136, "block padding");
_Static_assert(sizeof(block_iq2_xxs) == 66 && sizeof(block_iq2_xs) == 74 && sizeof(block_iq2_s) == 82, "block padding");
_Static_assert(sizeof(block_iq3_xxs) == 98 && sizeof(block_iq3_s) == 110, "block padding");
_Static_assert(sizeof(block_iq1_s) == 50 && sizeof(block_iq1_m) == 56, "block padding");


/* bytes of n_per_row values of `type` (ggml_row_size); 0 for a type not listed above */
size_t ggml_row_size(enum ggml_type type, int64_t n_per_row);

/* ggml-impl.h's software fp16 and bf16 conversions (ggml-base is built without F16C) */
static inline float fp32_from_bits(uint32_t w) {
    union { uint32_t as_bits; float as_value; } fp32;
    fp32.as_bits = w;
    return fp32.as_value;
}

static inline uint32_t fp32_to_bits(float f) {
    union { float as_value; uint32_t as_bits; } fp32;
    fp32.as_value = f;
    return fp32.as_bits;
}

static inline float ggml_compute_fp16_to_fp32(ggml_half h) {
    const uint32_t w = (uint32_t) h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = UINT32_C(0xE0) << 23;
    const float exp_scale = 0x1.0p-112f;
    const float normalized_value = fp32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = UINT32_C(126) << 23;
    const float magic_bias = 0.5f;
    const float denormalized_value = fp32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
    const uint32_t result = sign |
        (two_w < denormalized_cutoff ? fp32_to_bits(denormalized_value) : fp32_to_bits(normalized_value));
    return fp32_from_bits(result);
}

static inline ggml_half ggml_compute_fp32_to_fp16(float f) {
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = (__builtin_fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = fp32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t bias = shl1_w & UINT32_C(0xFF000000);
    if (bias < UINT32_C(0x71000000)) {
        bias = UINT32_C(0x71000000);
    }
    base = fp32_from_bits((bias >> 1) + UINT32_C(0x07800000)) + base;
    const uint32_t bits = fp32_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
    const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (sign >> 16) | (shl1_w > UINT32_C(0xFF000000) ? UINT16_C(0x7E00) : nonsign);
}

static inline float ggml_compute_bf16_to_fp32(ggml_bf16_t h) {
    return fp32_from_bits((uint32_t) h.bits << 16);
}

static inline ggml_bf16_t ggml_compute_fp32_to_bf16(float s) {
    ggml_bf16_t h;
    const uint32_t i = fp32_to_bits(s);
    if ((i & 0x7fffffff) > 0x7f800000) { /* nan */
        h.bits = (i >> 16) | 64;         /* force to quiet */
        return h;
    }
    h.bits = (i + (0x7fff + ((i >> 16) & 1))) >> 16;
    return h;
}

/* ggml-impl.h's ggml_e8m0_to_fp32_half: half of the E8M0 scale 2^(x-127) */
static inline float ggml_e8m0_to_fp32_half(uint8_t x) {
    const uint32_t bits = x < 2 ? UINT32_C(0x00200000) << x : (uint32_t)(x - 1) << 23;
    return fp32_from_bits(bits);
}

#define GGML_E8M0_TO_FP32_HALF(x) ggml_e8m0_to_fp32_half(x)
#define GGML_FP16_TO_FP32(x) ggml_compute_fp16_to_fp32(x)
#define GGML_FP32_TO_FP16(x) ggml_compute_fp32_to_fp16(x)

/* ggml_quants.c: the quantize_<type> functions of ggml_quantize_chunk and the to_float rows */
size_t quantize_q4_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q4_1(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q5_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q5_1(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q8_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q2_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q3_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q4_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q5_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q6_K(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q1_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_q2_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_mxfp4(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_tq1_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_tq2_0(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq2_xxs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq2_xs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq2_s(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq3_xxs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq3_s(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq1_s(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq1_m(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq4_nl(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);
size_t quantize_iq4_xs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *quant_weights);

void dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t k);
void dequantize_row_q4_1(const block_q4_1 *x, float *y, int64_t k);
void dequantize_row_q5_0(const block_q5_0 *x, float *y, int64_t k);
void dequantize_row_q5_1(const block_q5_1 *x, float *y, int64_t k);
void dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t k);
void dequantize_row_q2_K(const block_q2_K *x, float *y, int64_t k);
void dequantize_row_q3_K(const block_q3_K *x, float *y, int64_t k);
void dequantize_row_q4_K(const block_q4_K *x, float *y, int64_t k);
void dequantize_row_q5_K(const block_q5_K *x, float *y, int64_t k);
void dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t k);
void dequantize_row_q1_0(const block_q1_0 *x, float *y, int64_t k);
void dequantize_row_q2_0(const block_q2_0 *x, float *y, int64_t k);
void dequantize_row_mxfp4(const block_mxfp4 *x, float *y, int64_t k);
void dequantize_row_tq1_0(const block_tq1_0 *x, float *y, int64_t k);
void dequantize_row_tq2_0(const block_tq2_0 *x, float *y, int64_t k);
void dequantize_row_iq2_xxs(const block_iq2_xxs *x, float *y, int64_t k);
void dequantize_row_iq2_xs(const block_iq2_xs *x, float *y, int64_t k);
void dequantize_row_iq2_s(const block_iq2_s *x, float *y, int64_t k);
void dequantize_row_iq3_xxs(const block_iq3_xxs *x, float *y, int64_t k);
void dequantize_row_iq3_s(const block_iq3_s *x, float *y, int64_t k);
void dequantize_row_iq1_s(const block_iq1_s *x, float *y, int64_t k);
void dequantize_row_iq1_m(const block_iq1_m *x, float *y, int64_t k);
void dequantize_row_iq4_nl(const block_iq4_nl *x, float *y, int64_t k);
void dequantize_row_iq4_xs(const block_iq4_xs *x, float *y, int64_t k);

/* searches.c: make_qx_quants' tries, make_qkx2_quants' and make_qkx3_quants' steps and
 * quantize_row_iq4_nl_impl's tries, side by side in vector lanes */
void lq_qx_tries(int n, int nmax, const float *x, const float *weight, float max, int8_t *L, float *scale,
                 float *best);
void lq_qkx_steps(int n, int nmax, const float *x, const float *weights, float max, float rmin, float rdelta,
                  int nstep, int use_mad, float sum_w, float sum_x, uint8_t *L, float *scale, float *min,
                  float *best_error);
void lq_iq4_tries(int block_size, const float *xb, const float *weight, const int8_t *values, float max, int ntry,
                  float *d, float *best);

/* the i-quants' grid searches, set up once per type before quantizing (ggml_quantize_init) */
void iq2xs_init_impl(enum ggml_type type);
void iq2xs_free_impl(enum ggml_type type);
void iq3xs_init_impl(int grid_size);
void iq3xs_free_impl(int grid_size);

#endif
