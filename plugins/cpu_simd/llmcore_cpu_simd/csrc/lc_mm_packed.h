/* Prompt batches as a packed GEMM (mm_packed.c, AVX2 and AVX-512 builds). A block of up to
 * LC_PACKED_ROWS weight rows is unpacked once into lc_packed_bytes(type, k) bytes (64-byte aligned
 * scratch), then multiplied with any number of activation rows (the weight type's vec_dot format):
 * y[t * ldy + r] for the block's rows r < nrows. Each output has the bits of the one-row kernel of
 * the order asked for:
 *   LC_ORDER_VEC_DOT   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: lc_vec_dot_* (= the matmul tiles, tinyBLAS);
 *                      TQ1_0, TQ2_0: lc_vec_dot_* (where the build has quants_iq_grid.c);
 *                      Q4_K: lc_vec_dot_q4_K (llama.cpp's repacked GEMV, its mul_mat_id's order)
 *   LC_ORDER_KQ_TILED  Q2_K..Q6_K, the i-quants of 256-blocks: lc_vec_dot_*_tiled (llama.cpp's
 *                      tiled kernel; the i-quants where the build has ggml's tables)
 *   LC_ORDER_KQ_GEMM   Q4_K, Q2_K: lc_vec_dot_q4_K_gemm, lc_vec_dot_q2_K_gemm (llama.cpp's repacked GEMMs)
 *   LC_ORDER_BLOCK_SUMS Q4_0, IQ4_NL, MXFP4: lc_vec_dot_q4_0_repacked, lc_vec_dot_iq4_nl, lc_vec_dot_mxfp4
 *                      (llama.cpp's repacked GEMM and GEMV; IQ4_NL and MXFP4 where the build has ggml's
 *                      tables) */
#ifndef LC_MM_PACKED_H
#define LC_MM_PACKED_H

#include "lc_types.h"
#include "lc_simd.h"

enum { LC_ORDER_NONE = 0, LC_ORDER_VEC_DOT = 1, LC_ORDER_KQ_TILED = 2, LC_ORDER_KQ_GEMM = 3, LC_ORDER_BLOCK_SUMS = 4 };

#if defined(LC_AVX512)
#define LC_PACKED_ROWS 16
#elif defined(LC_AVX2)
#define LC_PACKED_ROWS 8
#endif

/* cffi-cdef: begin */
/* 0 when this build has no packed kernel for the type */
size_t lc_packed_bytes(int type, int64_t k);
/* the tokens a block of unpacked weight rows meets at once (a tile's columns; any count gives the same
 * bits): for the 32-block types 1 or 2 (the default), for the K-quants and i-quants 2 or 4 (the
 * default); timed per CPU (tuning.py) */
void lc_set_tile_tokens(int legacy, int k_quants);
/* cffi-cdef: end */
void lc_pack_rows(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed);
void lc_packed_mul(int type, int order, const void *packed, int nrows, int64_t k, const void *x, size_t x_bytes,
                   int64_t n_tokens, float *y, size_t ldy);

#endif
