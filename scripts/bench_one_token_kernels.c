/* One token's product with weight rows: cpu_simd's kernels against the ones llama.cpp runs (ggml-cpu's,
 * exported by its libggml-cpu.so), nanoseconds per weight row. Weights of random bytes (the speed, not
 * the values, is measured; Q4_1, Q5_0 and Q8_0 scales are set to 1 so no product overflows).
 *   in cache:  best of 3000 runs over 256 rows;
 *   streamed:  rows filling STREAM_MB (decode's output matrix, Q8_0 49152 x 576, is 30 MB), read from
 *              one of COPIES copies in turn so that none is still in cache (decode reads ~100 MB of
 *              weights per token), in calls of CHUNK_ROWS rows as the executor's chunks (with two
 *              threads 72 for a 576-row matrix, 24 for 192, 192 for 1536, 6144 for the output; all of
 *              them by default), by THREADS threads taking the chunks in turn as the executor does
 *              (1 by default): best and median of 60 runs, and the GB/s of the best.
 * Built for the AVX2 level (an AVX-512 build takes its own kernels: add its -m flags to compare it):
 *
 *   C=plugins/cpu_simd/llmcore_cpu_simd/csrc L=/tmp/lcpp-build/bin
 *   T=$(.venv/bin/python -c 'from llmcore_cpu_simd.build import tables_dir; print(tables_dir())')  # ggml_tables.h
 *   cc -O3 -std=gnu11 -ffp-contract=off -mavx2 -mfma -mf16c -I$C -I$T -o /tmp/bench_one_token_kernels \
 *      scripts/bench_one_token_kernels.c $C/gemv_kq.c $C/quants_kq.c $C/quants_iq.c $C/quants.c $C/quants_legacy.c \
 *      -L$L -lggml-cpu -lggml-base -Wl,-rpath,$L -lm -pthread
 *   /tmp/bench_one_token_kernels 576 [CHUNK_ROWS [THREADS]]; /tmp/bench_one_token_kernels 1536 ...
 * (K-quant lines only for a row length that is a multiple of 256)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_gemv_kq.h"
#include "lc_kernels.h"
#include "lc_quants_iq.h"
#include "lc_quants_kq.h"
#include "lc_quants_legacy.h"

/* ggml-cpu: the repacked Q4_K GEMV llama.cpp runs on every Q4_K matrix of 8k rows on AVX2 CPUs (the
 * layout it repacks to is not rebuilt here: the same bytes cost the same), and its vec_dots, which it
 * runs row by row for the others (no x86 repacked layout for Q4_1, Q5_0 and Q8_0) */
void ggml_gemv_q4_K_8x8_q8_K(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
void ggml_vec_dot_q4_K_q8_K(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
void ggml_vec_dot_q6_K_q8_K(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
void ggml_vec_dot_q4_1_q8_1(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
void ggml_vec_dot_q8_0_q8_0(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
void ggml_vec_dot_q5_0_q8_0(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
/* no x86 repacked layout for IQ4_XS and Q6_K either */
void ggml_vec_dot_iq4_xs_q8_K(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);

enum { ROWS = 256, REPEATS = 3000, STREAM_MB = 30, COPIES = 6, STREAM_REPEATS = 60 };

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*rows_fn)(int k, const char *w, size_t row_bytes, int nrows, const void *x, float *y);

static int chunk_rows, n_threads = 1;

/* one streamed run: what every thread needs, and the next chunk to take */
typedef struct {
    rows_fn run;
    int k, nrows;
    const char *w;
    size_t row_bytes;
    const void *x;
    float *y;
    atomic_int next_chunk;
    pthread_barrier_t start, done;
} stream_job;

static void take_chunks(stream_job *job) {
    for (int c = atomic_fetch_add(&job->next_chunk, 1); (int64_t)c * chunk_rows < job->nrows; c = atomic_fetch_add(&job->next_chunk, 1)) {
        const int r = c * chunk_rows, n = job->nrows - r < chunk_rows ? job->nrows - r : chunk_rows;
        job->run(job->k, job->w + (size_t)r * job->row_bytes, job->row_bytes, n, job->x, job->y + r);
    }
}

static void *helper_thread(void *arg) {
    stream_job *job = arg;
    for (int rep = 0; rep < STREAM_REPEATS; rep++) {
        pthread_barrier_wait(&job->start);
        take_chunks(job);
        pthread_barrier_wait(&job->done);
    }
    return NULL;
}

/* one kernel over the streamed rows, chunk by chunk: best and median ns per row, GB/s of the best */
static void streamed(const char *label, rows_fn run, int k, const char *w, size_t row_bytes, int nrows,
                     const void *x, float *y) {
    double t[STREAM_REPEATS];
    stream_job job = {.run = run, .k = k, .nrows = nrows, .row_bytes = row_bytes, .x = x, .y = y};
    pthread_barrier_init(&job.start, NULL, (unsigned)n_threads);
    pthread_barrier_init(&job.done, NULL, (unsigned)n_threads);
    pthread_t helpers[8];
    for (int i = 1; i < n_threads; i++) pthread_create(&helpers[i], NULL, helper_thread, &job);
    for (int rep = 0; rep < STREAM_REPEATS; rep++) {
        job.w = w + (size_t)(rep % COPIES) * (size_t)nrows * row_bytes;
        atomic_store(&job.next_chunk, 0);
        const double t0 = lc_now_seconds();  /* before the start: the helpers may take every chunk before this thread runs on */
        pthread_barrier_wait(&job.start);
        take_chunks(&job);
        pthread_barrier_wait(&job.done);
        t[rep] = lc_now_seconds() - t0;
    }
    for (int i = 1; i < n_threads; i++) pthread_join(helpers[i], NULL);
    pthread_barrier_destroy(&job.start);
    pthread_barrier_destroy(&job.done);
    qsort(t, STREAM_REPEATS, sizeof t[0], by_value);
    printf("%-34s %6.1f %6.1f  %5.1f GB/s\n", label, t[0] / nrows * 1e9, t[STREAM_REPEATS / 2] / nrows * 1e9,
           (double)nrows * (double)row_bytes / t[0] * 1e-9);
}

/* kernels over n rows, as rows_fn: row by row through ggml's vec_dot FN or lc_vec_dot_TYPE, or in one
 * lc_gemv_TYPE call */
#define GGML_VEC_DOT_ROWS(type, fn)                                                                   \
    static void ggml_##type##_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) { \
        for (int r = 0; r < n; r++) fn(k, y + r, 0, w + r * rb, 0, x, 0, 1);                         \
    }
#define LC_VEC_DOT_ROWS(type)                                                                            \
    static void vec_dot_##type##_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) { \
        for (int r = 0; r < n; r++) lc_vec_dot_##type(k, y + r, w + r * rb, x);                         \
    }
#define LC_GEMV_ROWS(type)                                                                            \
    static void gemv_##type##_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) { \
        lc_gemv_##type(k, w, rb, n, x, y);                                                            \
    }
GGML_VEC_DOT_ROWS(q4_1, ggml_vec_dot_q4_1_q8_1)
GGML_VEC_DOT_ROWS(q8_0, ggml_vec_dot_q8_0_q8_0)
GGML_VEC_DOT_ROWS(q5_0, ggml_vec_dot_q5_0_q8_0)
GGML_VEC_DOT_ROWS(q4_K, ggml_vec_dot_q4_K_q8_K)
GGML_VEC_DOT_ROWS(q6_K, ggml_vec_dot_q6_K_q8_K)
GGML_VEC_DOT_ROWS(iq4_xs, ggml_vec_dot_iq4_xs_q8_K)
LC_VEC_DOT_ROWS(q5_0)
LC_VEC_DOT_ROWS(q4_K)
LC_VEC_DOT_ROWS(q6_K)
LC_VEC_DOT_ROWS(iq4_xs)
LC_GEMV_ROWS(q4_1)
LC_GEMV_ROWS(q8_0)
LC_GEMV_ROWS(q5_0)
LC_GEMV_ROWS(q4_K)
LC_GEMV_ROWS(q6_K)
LC_GEMV_ROWS(iq4_xs)
/* the path before the GEMV: the tile, two rows side by side */
static void tile_q4_1_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) {
    for (int r = 0; r < n; r += 2) lc_tile_q4_1(k, y + r, 0, w + r * rb, rb, r + 1 < n ? 2 : 1, x, 0, 1);
}
static void tile_q8_0_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) {
    for (int r = 0; r < n; r += 2) lc_tile_q8_0(k, y + r, 0, w + r * rb, rb, r + 1 < n ? 2 : 1, x, 0, 1);
}
static void tile_q5_0_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) {
    for (int r = 0; r < n; r += 2) lc_tile_q5_0(k, y + r, 0, w + r * rb, rb, r + 1 < n ? 2 : 1, x, 0, 1);
}
/* ggml's repacked Q4_K GEMV: n rows in one call, its output columns the weight rows */
static void ggml_gemv_q4_K_rows(int k, const char *w, size_t rb, int n, const void *x, float *y) {
    (void)rb;
    ggml_gemv_q4_K_8x8_q8_K(k, y, 0, w, x, 1, n);
}

enum activations { Q8_1_ROW, Q8_0_ROW, Q8_K_ROW, ACTIVATION_FORMATS };
enum { MAX_KERNELS = 4 };

/* one weight type and the kernels timed on it, in the order printed */
typedef struct {
    int block_elems;
    size_t block_bytes;
    int scale_words;          /* the f16 scales fill_blocks sets to 1 at each block's start */
    enum activations x;
    int streamed;             /* 0: in cache only (ggml's repacked Q4_K GEMV takes groups of 8 rows, a chunk need not be) */
    struct { const char *label; rows_fn run; } kernels[MAX_KERNELS];
} weight_type;

static const weight_type TYPES[] = {
    {QK4_1, sizeof(block_q4_1), 2, Q8_1_ROW, 1,
     {{"Q4_1  ggml vec_dot", ggml_q4_1_rows}, {"Q4_1  lc_tile_q4_1, 2 rows", tile_q4_1_rows}, {"Q4_1  lc_gemv_q4_1", gemv_q4_1_rows}}},
    {QK8_0, sizeof(block_q8_0), 1, Q8_0_ROW, 1,
     {{"Q8_0  ggml vec_dot", ggml_q8_0_rows}, {"Q8_0  lc_tile_q8_0, 2 rows", tile_q8_0_rows}, {"Q8_0  lc_gemv_q8_0", gemv_q8_0_rows}}},
    {QK5_0, sizeof(block_q5_0), 1, Q8_0_ROW, 1,
     {{"Q5_0  ggml vec_dot", ggml_q5_0_rows}, {"Q5_0  lc_tile_q5_0, 2 rows", tile_q5_0_rows},
      {"Q5_0  lc_vec_dot_q5_0", vec_dot_q5_0_rows}, {"Q5_0  lc_gemv_q5_0", gemv_q5_0_rows}}},
    {QK_K, sizeof(block_q4_K), 0, Q8_K_ROW, 0,
     {{"Q4_K  llama.cpp repacked GEMV", ggml_gemv_q4_K_rows}, {"Q4_K  lc_gemv_q4_K", gemv_q4_K_rows},
      {"Q4_K  ggml vec_dot", ggml_q4_K_rows}, {"Q4_K  lc_vec_dot_q4_K", vec_dot_q4_K_rows}}},
    {QK_K, sizeof(block_q6_K), 0, Q8_K_ROW, 1,
     {{"Q6_K  ggml vec_dot", ggml_q6_K_rows}, {"Q6_K  lc_vec_dot_q6_K", vec_dot_q6_K_rows}, {"Q6_K  lc_gemv_q6_K", gemv_q6_K_rows}}},
    {QK_K, sizeof(block_iq4_xs), 1, Q8_K_ROW, 1,
     {{"IQ4_XS ggml vec_dot", ggml_iq4_xs_rows}, {"IQ4_XS lc_vec_dot_iq4_xs", vec_dot_iq4_xs_rows},
      {"IQ4_XS lc_gemv_iq4_xs", gemv_iq4_xs_rows}}},
};
enum { N_TYPES = sizeof TYPES / sizeof TYPES[0] };

/* aligned_alloc's size must be a multiple of the alignment */
static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

/* random bytes with every block's f16 scales (the first scale_words 16-bit words) set to 1.0 */
static void fill_blocks(char *w, size_t bytes, size_t block_bytes, int scale_words) {
    for (size_t i = 0; i < bytes; i++) w[i] = (char)rand();
    for (size_t b = 0; b + block_bytes <= bytes; b += block_bytes)
        for (int s = 0; s < scale_words; s++) memcpy(w + b + 2 * s, &(uint16_t){0x3C00}, 2);
}

/* one kernel over ROWS rows in cache: best ns per row */
static void in_cache(const char *label, rows_fn run, int k, const char *w, size_t row_bytes, const void *x, float *y) {
    double best = 1e9;
    for (int rep = 0; rep < REPEATS; rep++) {
        const double t0 = lc_now_seconds();
        run(k, w, row_bytes, ROWS, x, y);
        const double dt = lc_now_seconds() - t0;
        best = dt < best ? dt : best;
    }
    printf("%-30s %6.1f\n", label, best / ROWS * 1e9);
}

int main(int argc, char **argv) {
    const int k = argc > 1 ? atoi(argv[1]) : 1024;
    if (k <= 0 || k % 32 || k > 8192) {
        fprintf(stderr, "usage: %s ROW_LENGTH (a multiple of 32, at most 8192) [CHUNK_ROWS]\n", argv[0]);
        return 2;
    }
    chunk_rows = argc > 2 ? atoi(argv[2]) : 1 << 28;
    n_threads = argc > 3 ? atoi(argv[3]) : 1;
    if (chunk_rows <= 0 || n_threads < 1 || n_threads > 8) {
        fprintf(stderr, "CHUNK_ROWS > 0, 1 <= THREADS <= 8\n");
        return 2;
    }
    static float x_f32[8192], y[ROWS];
    for (int i = 0; i < k; i++) x_f32[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    void *x[ACTIVATION_FORMATS] = {alloc64((size_t)k / 32 * sizeof(block_q8_1)), alloc64((size_t)k / 32 * sizeof(block_q8_0)),
                                   alloc64((size_t)k / QK_K * sizeof(block_q8_K))};
    lc_quantize_row_q8_1(x_f32, x[Q8_1_ROW], k);
    lc_quantize_row_q8_0(x_f32, x[Q8_0_ROW], k);
    if (k % QK_K == 0) lc_quantize_row_q8_K(x_f32, x[Q8_K_ROW], k);

    printf("k = %d, ns per row (in cache, best of %d)\n", k, REPEATS);
    for (int t = 0; t < N_TYPES; t++) {
        const weight_type *type = &TYPES[t];
        if (k % type->block_elems) continue;
        const size_t row_bytes = (size_t)(k / type->block_elems) * type->block_bytes;
        char *w = alloc64(ROWS * row_bytes);
        fill_blocks(w, ROWS * row_bytes, type->block_bytes, type->scale_words);
        for (int i = 0; i < MAX_KERNELS && type->kernels[i].run; i++)
            in_cache(type->kernels[i].label, type->kernels[i].run, k, w, row_bytes, x[type->x], y);
        free(w);
    }

    printf("streamed, %d MB of rows x %d copies, calls of %d rows (at most), %d threads: ns per row best, median, GB/s of the best\n",
           STREAM_MB, COPIES, chunk_rows, n_threads);
    for (int t = 0; t < N_TYPES; t++) {
        const weight_type *type = &TYPES[t];
        if (!type->streamed || k % type->block_elems) continue;
        /* rows of STREAM_MB, COPIES copies (rows a multiple of 4 for the GEMV) */
        const size_t row_bytes = (size_t)(k / type->block_elems) * type->block_bytes;
        const int nrows = (int)(((size_t)STREAM_MB << 20) / row_bytes) / 4 * 4;
        const size_t bytes = (size_t)COPIES * (size_t)nrows * row_bytes;
        char *w = alloc64(bytes);
        float *ys = malloc((size_t)nrows * sizeof(float));
        fill_blocks(w, bytes, type->block_bytes, type->scale_words);
        for (int i = 0; i < MAX_KERNELS && type->kernels[i].run; i++)
            streamed(type->kernels[i].label, type->kernels[i].run, k, w, row_bytes, nrows, x[type->x], ys);
        free(w);
        free(ys);
    }
    return 0;
}
