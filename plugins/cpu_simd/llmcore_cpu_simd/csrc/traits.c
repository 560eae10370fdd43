/* The type-traits table: for each GGML weight type, its block geometry, the activation format
 * its dot product takes, and its kernels. The K-quant and legacy-quant kernels live in files of
 * their own; their entries are filled only when those files are part of the build. */
#include "lc_kernels.h"

#if __has_include("lc_quants_kq.h")
#include "lc_quants_kq.h"
#define LC_HAVE_KQ 1
#endif
#if __has_include("lc_quants_iq.h")
#include "lc_quants_iq.h"
#define LC_HAVE_IQ 1
#endif
/* the files of the newest types: built with the generated ggml_tables.h on the include path (build.py),
 * absent from the tests' standalone builds of the older kernels */
#if __has_include("ggml_tables.h")
#include "lc_quants_bits.h"
#define LC_HAVE_NEW_TYPES 1
#endif
#if __has_include("lc_gemv_kq.h")
#include "lc_gemv_kq.h"
#define LC_HAVE_GEMV_KQ 1
#endif
#if __has_include("lc_quants_legacy.h")
#include "lc_quants_legacy.h"
#define LC_HAVE_LEGACY 1
#endif

#define TRAITS(bs, ts, vdt, name) {bs, ts, vdt, lc_vec_dot_##name, lc_dequant_row_##name}

const lc_type_traits lc_traits[LC_TYPE_COUNT] = {
    [LC_TYPE_F32] = TRAITS(1, sizeof(float), LC_TYPE_F32, f32),
    [LC_TYPE_F16] = TRAITS(1, sizeof(lc_fp16_t), LC_TYPE_F16, f16),
    [LC_TYPE_Q8_0] = TRAITS(QK8_0, sizeof(block_q8_0), LC_TYPE_Q8_0, q8_0),
    [LC_TYPE_Q4_1] = TRAITS(QK4_1, sizeof(block_q4_1), LC_TYPE_Q8_1, q4_1),
    /* activation formats: geometry only */
    [LC_TYPE_Q8_1] = {QK8_1, sizeof(block_q8_1), LC_TYPE_Q8_1, 0, 0},
    [LC_TYPE_Q8_K] = {QK_K, sizeof(block_q8_K), LC_TYPE_Q8_K, 0, 0},
#if defined(LC_HAVE_LEGACY)
    [LC_TYPE_Q4_0] = TRAITS(QK4_0, sizeof(block_q4_0), LC_TYPE_Q8_0, q4_0),
    [LC_TYPE_Q5_0] = TRAITS(QK5_0, sizeof(block_q5_0), LC_TYPE_Q8_0, q5_0),
    [LC_TYPE_Q5_1] = TRAITS(QK5_1, sizeof(block_q5_1), LC_TYPE_Q8_1, q5_1),
    [LC_TYPE_BF16] = TRAITS(1, sizeof(lc_bf16_t), LC_TYPE_BF16, bf16),
#else
    [LC_TYPE_BF16] = {1, sizeof(lc_bf16_t), LC_TYPE_BF16, 0, 0},
#endif
#if defined(LC_HAVE_KQ)
    [LC_TYPE_Q2_K] = TRAITS(QK_K, sizeof(block_q2_K), LC_TYPE_Q8_K, q2_K),
    [LC_TYPE_Q3_K] = TRAITS(QK_K, sizeof(block_q3_K), LC_TYPE_Q8_K, q3_K),
    [LC_TYPE_Q4_K] = TRAITS(QK_K, sizeof(block_q4_K), LC_TYPE_Q8_K, q4_K),
    [LC_TYPE_Q5_K] = TRAITS(QK_K, sizeof(block_q5_K), LC_TYPE_Q8_K, q5_K),
    [LC_TYPE_Q6_K] = TRAITS(QK_K, sizeof(block_q6_K), LC_TYPE_Q8_K, q6_K),
#endif
#if defined(LC_HAVE_KQ) && defined(LC_HAVE_IQ) /* IQ4_XS takes the Q8_K activations of the K-quant file */
    [LC_TYPE_IQ4_XS] = TRAITS(QK_K, sizeof(block_iq4_xs), LC_TYPE_Q8_K, iq4_xs),
#endif
#if defined(LC_HAVE_KQ) && defined(LC_HAVE_IQ) && defined(LC_HAVE_NEW_TYPES)
    [LC_TYPE_IQ2_XXS] = TRAITS(QK_K, sizeof(block_iq2_xxs), LC_TYPE_Q8_K, iq2_xxs),
    [LC_TYPE_IQ2_XS] = TRAITS(QK_K, sizeof(block_iq2_xs), LC_TYPE_Q8_K, iq2_xs),
    [LC_TYPE_IQ2_S] = TRAITS(QK_K, sizeof(block_iq2_s), LC_TYPE_Q8_K, iq2_s),
    [LC_TYPE_IQ3_XXS] = TRAITS(QK_K, sizeof(block_iq3_xxs), LC_TYPE_Q8_K, iq3_xxs),
    [LC_TYPE_IQ3_S] = TRAITS(QK_K, sizeof(block_iq3_s), LC_TYPE_Q8_K, iq3_s),
    [LC_TYPE_IQ1_S] = TRAITS(QK_K, sizeof(block_iq1_s), LC_TYPE_Q8_K, iq1_s),
    [LC_TYPE_IQ1_M] = TRAITS(QK_K, sizeof(block_iq1_m), LC_TYPE_Q8_K, iq1_m),
    [LC_TYPE_TQ1_0] = TRAITS(QK_K, sizeof(block_tq1_0), LC_TYPE_Q8_K, tq1_0),
    [LC_TYPE_TQ2_0] = TRAITS(QK_K, sizeof(block_tq2_0), LC_TYPE_Q8_K, tq2_0),
    [LC_TYPE_IQ4_NL] = TRAITS(QK4_NL, sizeof(block_iq4_nl), LC_TYPE_Q8_0, iq4_nl),
    [LC_TYPE_MXFP4] = TRAITS(QK_MXFP4, sizeof(block_mxfp4), LC_TYPE_Q8_0, mxfp4),
    [LC_TYPE_NVFP4] = TRAITS(QK_NVFP4, sizeof(block_nvfp4), LC_TYPE_Q8_0, nvfp4),
#endif
#if defined(LC_HAVE_NEW_TYPES)
    [LC_TYPE_Q1_0] = TRAITS(QK1_0, sizeof(block_q1_0), LC_TYPE_Q8_0, q1_0),
    [LC_TYPE_Q2_0] = TRAITS(QK2_0, sizeof(block_q2_0), LC_TYPE_Q8_0, q2_0),
#endif
};

void lc_quantize_row(int vec_dot_type, const float *x, void *y, int64_t n) {
    switch (vec_dot_type) {
    case LC_TYPE_Q8_0: lc_quantize_row_q8_0(x, y, n); break;
    case LC_TYPE_Q8_1: lc_quantize_row_q8_1(x, y, n); break;
    case LC_TYPE_F16: lc_quantize_row_f16(x, y, n); break;
    case LC_TYPE_BF16: lc_quantize_row_bf16(x, y, n); break;
#if defined(LC_HAVE_KQ)
    case LC_TYPE_Q8_K: lc_quantize_row_q8_K(x, y, n); break;
#endif
    default: break; /* F32: the activations are used as they are */
    }
}

lc_tile_fn lc_tile_for(int type) {
    switch (type) {
    case LC_TYPE_Q8_0: return lc_tile_q8_0;
    case LC_TYPE_Q4_1: return lc_tile_q4_1;
#if defined(LC_AVX2)
    case LC_TYPE_Q5_0: return lc_tile_q5_0;
#endif
    default: return 0;
    }
}

static lc_gemv_fn gemv_kernel(int type) {
    switch (type) {
#if defined(LC_AVX2) /* four rows at a time, measured on Zen 3 (AVX2) and Zen 4 (both builds) */
    case LC_TYPE_Q8_0: return lc_gemv_q8_0;
    case LC_TYPE_Q4_1: return lc_gemv_q4_1;
#endif
#if defined(LC_HAVE_LEGACY) && defined(LC_AVX2) /* four rows at a time, measured on Zen 4 (AVX-512 and AVX2 builds) */
    case LC_TYPE_Q5_0: return lc_gemv_q5_0;
    case LC_TYPE_Q5_1: return lc_gemv_q5_1;
    /* in llama.cpp's repacked order: ops.c takes it only for the weights llama.cpp repacks */
    case LC_TYPE_Q4_0: return lc_gemv_q4_0_repacked;
#endif
#if defined(LC_HAVE_GEMV_KQ)
    /* in llama.cpp's repacked order: ops.c takes it only for the weights llama.cpp repacks */
    case LC_TYPE_Q2_K: return lc_gemv_q2_K_repacked;
    case LC_TYPE_Q4_K: return lc_gemv_q4_K;
    /* Zen 4, rows of 1024 from RAM, one thread: 24.5 GB/s against vec_dot's 18.5 (AVX-512 build), 21.2 (AVX2) */
    case LC_TYPE_Q5_K: return lc_gemv_q5_K;
#endif
/* Q6_K's: AVX2's four-row kernel had streamed rows from RAM on Zen 4 slower than vec_dot row by row
 * (its four rows four streams: a dense Q4_K_M model's two-thread decode 12% slower), so AVX-512 builds
 * went row by row until their own kernel (64-value steps, half the instructions): dense Q6_K decode
 * 338.5 against 308.4 t/s row by row, Q4_K_M 469.1 against 409.2 (medians of 7-9 interleaved runs).
 * Q3_K's likewise (AVX-512 builds): dense Q3_K_M 523.7 against 435.9. IQ4_XS's, faster both ways
 * there, on both. */
#if defined(LC_HAVE_GEMV_KQ) && defined(LC_AVX2)
    case LC_TYPE_Q6_K: return lc_gemv_q6_K;
#endif
#if defined(LC_HAVE_GEMV_KQ) && defined(LC_AVX512)
    case LC_TYPE_Q3_K: return lc_gemv_q3_K;
#endif
#if defined(LC_HAVE_GEMV_KQ) && defined(LC_AVX2) && defined(LC_HAVE_NEW_TYPES) /* IQ4_XS's reads ggml's levels from ggml_tables.h */
    case LC_TYPE_IQ4_XS: return lc_gemv_iq4_xs;
#endif
#if defined(LC_HAVE_IQ) && defined(LC_AVX2) && defined(LC_HAVE_NEW_TYPES) /* quants_iq_grid.c's */
    case LC_TYPE_IQ4_NL: return lc_gemv_iq4_nl;
    case LC_TYPE_MXFP4: return lc_gemv_mxfp4;
    case LC_TYPE_TQ1_0: return lc_gemv_tq1_0;
    case LC_TYPE_TQ2_0: return lc_gemv_tq2_0;
#endif
    default: return 0;
    }
}

static uint8_t one_token_path[LC_TYPE_COUNT]; /* LC_ONE_TOKEN_*: what the tuning chose on this CPU */

lc_gemv_fn lc_gemv_for(int type) { return one_token_path[type] == LC_ONE_TOKEN_ROW_BY_ROW ? 0 : gemv_kernel(type); }

lc_gemv_fn lc_gemm_order_gemv_for(int type) {
#if defined(LC_HAVE_GEMV_KQ)
    if (type == LC_TYPE_Q4_K) return lc_gemv_q4_K_gemm;
#endif
    (void)type;
    return 0;
}

int lc_gemv_prefetches(int type) {
    return one_token_path[type] == LC_ONE_TOKEN_GEMV ? 1 : one_token_path[type] == LC_ONE_TOKEN_GEMV_FAR_PREFETCH ? 2 : 0;
}

int lc_has_one_token_gemv(int type) { return type >= 0 && type < LC_TYPE_COUNT && gemv_kernel(type) != 0; }

void lc_set_one_token_path(int type, int path) {
    if (type >= 0 && type < LC_TYPE_COUNT && path >= LC_ONE_TOKEN_GEMV && path <= LC_ONE_TOKEN_GEMV_FAR_PREFETCH)
        one_token_path[type] = (uint8_t)path;
}
