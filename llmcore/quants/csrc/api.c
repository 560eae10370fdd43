/* The entry points of lq_quants.h: ggml_quantize_chunk's dispatch, the to_float conversions
 * llama-quantize uses on its input, and ggml_validate_row_data's checks, for the types of
 * ggml_quants.c plus F16 and BF16. */

#include "lq_quants.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int block_size;   /* values per block */
    size_t type_size; /* bytes per block */
    size_t (*quantize)(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *imatrix);
    void (*to_float)(const void *x, float *y, int64_t k);
    int n_halves;     /* fp16 scales per block that must be finite (ggml_validate_row_data) */
    size_t half_at;   /* byte offset of the first of them in the block */
    int e8m0;         /* the block starts with an E8M0 scale, which must not be 0xff */
    int iq1m;         /* IQ1_M: its fp16 scale is spread over the top nibbles of its scales */
} lq_traits;

#define TO_FLOAT(fn) ((void (*)(const void *, float *, int64_t))(fn))

/* indexed by ggml type id; an entry without a quantizer is a type not handled here */
static const lq_traits TYPES[] = {
    [GGML_TYPE_Q4_0] = {QK4_0, sizeof(block_q4_0), quantize_q4_0, TO_FLOAT(dequantize_row_q4_0), .n_halves = 1},
    [GGML_TYPE_Q4_1] = {QK4_1, sizeof(block_q4_1), quantize_q4_1, TO_FLOAT(dequantize_row_q4_1), .n_halves = 2},
    [GGML_TYPE_Q5_0] = {QK5_0, sizeof(block_q5_0), quantize_q5_0, TO_FLOAT(dequantize_row_q5_0), .n_halves = 1},
    [GGML_TYPE_Q5_1] = {QK5_1, sizeof(block_q5_1), quantize_q5_1, TO_FLOAT(dequantize_row_q5_1), .n_halves = 2},
    [GGML_TYPE_Q8_0] = {QK8_0, sizeof(block_q8_0), quantize_q8_0, TO_FLOAT(dequantize_row_q8_0), .n_halves = 1},
    [GGML_TYPE_Q2_K] = {QK_K, sizeof(block_q2_K), quantize_q2_K, TO_FLOAT(dequantize_row_q2_K), .n_halves = 2,
                        .half_at = offsetof(block_q2_K, d)},
    [GGML_TYPE_Q3_K] = {QK_K, sizeof(block_q3_K), quantize_q3_K, TO_FLOAT(dequantize_row_q3_K), .n_halves = 1,
                        .half_at = offsetof(block_q3_K, d)},
    [GGML_TYPE_Q4_K] = {QK_K, sizeof(block_q4_K), quantize_q4_K, TO_FLOAT(dequantize_row_q4_K), .n_halves = 2},
    [GGML_TYPE_Q5_K] = {QK_K, sizeof(block_q5_K), quantize_q5_K, TO_FLOAT(dequantize_row_q5_K), .n_halves = 2},
    [GGML_TYPE_Q6_K] = {QK_K, sizeof(block_q6_K), quantize_q6_K, TO_FLOAT(dequantize_row_q6_K), .n_halves = 1,
                        .half_at = offsetof(block_q6_K, d)},
    [GGML_TYPE_TQ1_0] = {QK_K, sizeof(block_tq1_0), quantize_tq1_0, TO_FLOAT(dequantize_row_tq1_0), .n_halves = 1,
                         .half_at = offsetof(block_tq1_0, d)},
    [GGML_TYPE_TQ2_0] = {QK_K, sizeof(block_tq2_0), quantize_tq2_0, TO_FLOAT(dequantize_row_tq2_0), .n_halves = 1,
                         .half_at = offsetof(block_tq2_0, d)},
    [GGML_TYPE_IQ2_XXS] = {QK_K, sizeof(block_iq2_xxs), quantize_iq2_xxs, TO_FLOAT(dequantize_row_iq2_xxs),
                           .n_halves = 1},
    [GGML_TYPE_IQ2_XS] = {QK_K, sizeof(block_iq2_xs), quantize_iq2_xs, TO_FLOAT(dequantize_row_iq2_xs), .n_halves = 1},
    [GGML_TYPE_IQ2_S] = {QK_K, sizeof(block_iq2_s), quantize_iq2_s, TO_FLOAT(dequantize_row_iq2_s), .n_halves = 1},
    [GGML_TYPE_IQ3_XXS] = {QK_K, sizeof(block_iq3_xxs), quantize_iq3_xxs, TO_FLOAT(dequantize_row_iq3_xxs),
                           .n_halves = 1},
    [GGML_TYPE_IQ3_S] = {QK_K, sizeof(block_iq3_s), quantize_iq3_s, TO_FLOAT(dequantize_row_iq3_s), .n_halves = 1},
    [GGML_TYPE_IQ1_S] = {QK_K, sizeof(block_iq1_s), quantize_iq1_s, TO_FLOAT(dequantize_row_iq1_s), .n_halves = 1},
    [GGML_TYPE_IQ1_M] = {QK_K, sizeof(block_iq1_m), quantize_iq1_m, TO_FLOAT(dequantize_row_iq1_m), .iq1m = 1},
    [GGML_TYPE_IQ4_NL] = {QK4_NL, sizeof(block_iq4_nl), quantize_iq4_nl, TO_FLOAT(dequantize_row_iq4_nl),
                          .n_halves = 1},
    [GGML_TYPE_IQ4_XS] = {QK_K, sizeof(block_iq4_xs), quantize_iq4_xs, TO_FLOAT(dequantize_row_iq4_xs), .n_halves = 1},
    [GGML_TYPE_MXFP4] = {QK_MXFP4, sizeof(block_mxfp4), quantize_mxfp4, TO_FLOAT(dequantize_row_mxfp4), .e8m0 = 1},
    [GGML_TYPE_Q1_0] = {QK1_0, sizeof(block_q1_0), quantize_q1_0, TO_FLOAT(dequantize_row_q1_0), .n_halves = 1},
    [GGML_TYPE_Q2_0] = {QK2_0, sizeof(block_q2_0), quantize_q2_0, TO_FLOAT(dequantize_row_q2_0), .n_halves = 1},
};

static const lq_traits *traits(int type) {
    if (type < 0 || type >= (int)(sizeof(TYPES) / sizeof(TYPES[0])) || !TYPES[type].quantize) return NULL;
    return &TYPES[type];
}

size_t ggml_row_size(enum ggml_type type, int64_t n_per_row) {
    const lq_traits *t = traits(type);
    return t ? t->type_size * (size_t)(n_per_row / t->block_size) : 0;
}

/* ggml_quantize_init: the grid searches of the i-quants, built once, under a lock */
static void quantize_init(int type) {
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    switch (type) {
        case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS: case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ1_S:
        case GGML_TYPE_IQ1_M: iq2xs_init_impl((enum ggml_type)type); break;
        case GGML_TYPE_IQ3_XXS: iq3xs_init_impl(256); break;
        case GGML_TYPE_IQ3_S: iq3xs_init_impl(512); break;
        default: break;
    }
    pthread_mutex_unlock(&lock);
}

size_t lq_quantize_rows(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix) {
    const int64_t n = nrows * n_per_row;
    if (type == GGML_TYPE_F16) {
        ggml_half *y = dst;
        for (int64_t i = 0; i < n; ++i) y[i] = GGML_FP32_TO_FP16(src[i]);
        return (size_t)n * sizeof(ggml_half);
    }
    if (type == GGML_TYPE_BF16) {
        ggml_bf16_t *y = dst;
        for (int64_t i = 0; i < n; ++i) y[i] = ggml_compute_fp32_to_bf16(src[i]);
        return (size_t)n * sizeof(ggml_bf16_t);
    }
    if (type == GGML_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return (size_t)n * sizeof(float);
    }
    const lq_traits *t = traits(type);
    if (!t || n_per_row % t->block_size) return 0;
    quantize_init(type);
    return t->quantize(src, dst, nrows, n_per_row, imatrix);
}

int lq_to_float(int type, const void *src, float *dst, int64_t n) {
    if (type == GGML_TYPE_F16) {
        const ggml_half *x = src;
        for (int64_t i = 0; i < n; ++i) dst[i] = GGML_FP16_TO_FP32(x[i]);
        return 1;
    }
    if (type == GGML_TYPE_BF16) {
        const ggml_bf16_t *x = src;
        for (int64_t i = 0; i < n; ++i) dst[i] = ggml_compute_bf16_to_fp32(x[i]);
        return 1;
    }
    const lq_traits *t = traits(type);
    if (!t || n % t->block_size) return 0;
    t->to_float(src, dst, n);
    return 1;
}

/* bytes of a row of n_per_row values of `type` (0: a type not handled here) */
static size_t row_bytes(int type, int64_t n_per_row) {
    if (type == GGML_TYPE_F32) return (size_t)n_per_row * sizeof(float);
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) return (size_t)n_per_row * sizeof(ggml_half);
    return ggml_row_size(type, n_per_row);
}

/* float32 values converted at a time (256 KiB): they are quantized while still in the cache, and
 * the buffer stays small however many rows a call takes */
#define CONVERT_VALUES (64 * 1024)

size_t lq_convert_rows(int src_type, const void *src, int dst_type, void *dst, int64_t nrows, int64_t n_per_row,
                       const float *imatrix) {
    if (src_type == GGML_TYPE_F32) return lq_quantize_rows(dst_type, src, dst, nrows, n_per_row, imatrix);
    const size_t src_row = row_bytes(src_type, n_per_row);
    const int64_t rows_per_group = MAX(1, CONVERT_VALUES / n_per_row);
    float *values = malloc((size_t)(MIN(nrows, rows_per_group) * n_per_row) * sizeof(float));
    if (!values) return 0;
    size_t written = 0;
    for (int64_t row = 0; row < nrows; row += rows_per_group) {
        const int64_t count = MIN(rows_per_group, nrows - row);
        size_t bytes = 0;
        if (lq_to_float(src_type, (const char *)src + row * src_row, values, count * n_per_row)) {
            bytes = lq_quantize_rows(dst_type, values, (char *)dst + written, count, n_per_row, imatrix);
        }
        if (!bytes) {
            written = 0;
            break;
        }
        written += bytes;
    }
    free(values);
    return written;
}

static int finite_half(ggml_half h) { return (h & 0x7c00) != 0x7c00; }

int lq_validate(int type, const void *data, size_t n_bytes) {
    const uint8_t *p = data;
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        const uint16_t mask = type == GGML_TYPE_F16 ? 0x7c00 : 0x7f80;
        for (size_t i = 0; i + 1 < n_bytes; i += 2) {
            uint16_t h;
            memcpy(&h, p + i, 2);
            if ((h & mask) == mask) return 0;
        }
        return 1;
    }
    if (type == GGML_TYPE_F32) {
        for (size_t i = 0; i + 3 < n_bytes; i += 4) {
            uint32_t w;
            memcpy(&w, p + i, 4);
            if ((w & 0x7f800000) == 0x7f800000) return 0;
        }
        return 1;
    }
    const lq_traits *t = traits(type);
    if (!t) return 0;
    if (n_bytes % t->type_size) return 0;
    for (size_t b = 0; b < n_bytes; b += t->type_size) {
        if (t->e8m0 && p[b] == 0xff) return 0;
        if (t->iq1m) {
            uint16_t sc[4];
            memcpy(sc, p + b + offsetof(block_iq1_m, scales), sizeof(sc));
            const uint16_t h = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
            if (!finite_half(h)) return 0;
        }
        for (int j = 0; j < t->n_halves; ++j) {
            ggml_half h;
            memcpy(&h, p + b + t->half_at + 2 * (size_t)j, 2);
            if (!finite_half(h)) return 0;
        }
    }
    return 1;
}
