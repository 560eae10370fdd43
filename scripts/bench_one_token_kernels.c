/* One token's product with K-quant rows in cache: cpu_simd's kernels against the ones llama.cpp runs
 * (ggml-cpu's, exported by its libggml-cpu.so), nanoseconds per weight row, best of 3000 runs over
 * 256 rows (weights of random bytes: the speed, not the values, is measured). Built for the AVX2
 * level (an AVX-512 build takes four rows through its own kernel: add its -m flags to compare it):
 *
 *   C=plugins/cpu_simd/llmcore_cpu_simd/csrc L=/tmp/lcpp-build/bin
 *   cc -O3 -std=gnu11 -ffp-contract=off -mavx2 -mfma -mf16c -I$C -o /tmp/bench_one_token_kernels \
 *      scripts/bench_one_token_kernels.c $C/gemv_kq.c $C/quants_kq.c -L$L -lggml-cpu -lggml-base -Wl,-rpath,$L -lm
 *   /tmp/bench_one_token_kernels 1024; /tmp/bench_one_token_kernels 2048
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lc_gemv_kq.h"
#include "lc_quants_kq.h"

/* ggml-cpu: the repacked Q4_K GEMV llama.cpp runs on every Q4_K matrix of 8k rows on AVX2 CPUs (the
 * layout it repacks to is not rebuilt here: the same bytes cost the same), and its vec_dots */
void ggml_gemv_q4_K_8x8_q8_K(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
void ggml_vec_dot_q4_K_q8_K(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
void ggml_vec_dot_q6_K_q8_K(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);

enum { ROWS = 256, REPEATS = 3000 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define BEST_NS_PER_ROW(expr)                                                   \
    ({                                                                          \
        double best = 1e9;                                                      \
        for (int rep = 0; rep < REPEATS; rep++) {                               \
            const double t0 = now();                                            \
            expr;                                                               \
            const double dt = now() - t0;                                       \
            best = dt < best ? dt : best;                                       \
        }                                                                       \
        best / ROWS * 1e9;                                                      \
    })

int main(int argc, char **argv) {
    const int k = argc > 1 ? atoi(argv[1]) : 1024;
    if (k <= 0 || k % 256 || k > 8192) {
        fprintf(stderr, "usage: %s ROW_LENGTH (a multiple of 256, at most 8192)\n", argv[0]);
        return 2;
    }
    const size_t q4 = (size_t)k / 256 * sizeof(block_q4_K), q6 = (size_t)k / 256 * sizeof(block_q6_K);
    char *w = aligned_alloc(64, ROWS * q6);
    for (size_t i = 0; i < ROWS * q6; i++) w[i] = (char)rand();
    static float x_f32[8192], y[ROWS];
    for (int i = 0; i < k; i++) x_f32[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    void *x = aligned_alloc(64, (size_t)k / 256 * sizeof(block_q8_K));
    lc_quantize_row_q8_K(x_f32, x, k);

    printf("k = %d, ns per row (in cache)\n", k);
    printf("Q4_K  llama.cpp repacked GEMV  %6.1f\n", BEST_NS_PER_ROW(ggml_gemv_q4_K_8x8_q8_K(k, y, 0, w, x, 1, ROWS)));
    printf("Q4_K  lc_gemv_q4_K             %6.1f\n", BEST_NS_PER_ROW(lc_gemv_q4_K(k, w, q4, ROWS, x, y)));
    printf("Q4_K  ggml vec_dot             %6.1f\n",
           BEST_NS_PER_ROW(for (int r = 0; r < ROWS; r++) ggml_vec_dot_q4_K_q8_K(k, y + r, 0, w + r * q4, 0, x, 0, 1)));
    printf("Q4_K  lc_vec_dot_q4_K          %6.1f\n",
           BEST_NS_PER_ROW(for (int r = 0; r < ROWS; r++) lc_vec_dot_q4_K(k, y + r, w + r * q4, x)));
    printf("Q6_K  ggml vec_dot             %6.1f\n",
           BEST_NS_PER_ROW(for (int r = 0; r < ROWS; r++) ggml_vec_dot_q6_K_q8_K(k, y + r, 0, w + r * q6, 0, x, 0, 1)));
    printf("Q6_K  lc_vec_dot_q6_K          %6.1f\n",
           BEST_NS_PER_ROW(for (int r = 0; r < ROWS; r++) lc_vec_dot_q6_K(k, y + r, w + r * q6, x)));
    return 0;
}
