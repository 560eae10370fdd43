/* Mixture-of-experts routing in ggml's CPU order: the gating softmax, the top-k experts as
 * ggml_argsort's std::sort ranks them, the expert-routed product (ggml_mul_mat_id: the rows routed
 * to an expert grouped and multiplied by the dense matmul's kernels) and the weighted sum. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "lc_moe.h"
#include "lc_simd.h"

/* ---- gating -------------------------------------------------------------------------------- */

/* ggml_soft_max_f32 without a mask (AVX-512 build): exps of x - max 16 at a time by ggml_v_expf,
 * each group's reduce_add added in double, the rest by the C library's expf, each added in double;
 * then every exp times the float of 1 / sum */
void lc_op_softmax(const lc_node *nd, const lc_task *task) {
    const int64_t cols = nd->ne[0];
    int64_t r0, r1;
    share(nd->ne[1], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = (const float *)nd->src[0] + r * cols;
        float *y = (float *)nd->dst + r * cols;
        float max = -INFINITY;
        for (int64_t i = 0; i < cols; i++) max = max > x[i] ? max : x[i];
        double sum = 0.0;
        int64_t i = 0;
        for (; i + 16 <= cols; i += 16) {
            for (int l = 0; l < 16; l++) y[i + l] = lc_expf_ggml(x[i + l] - max);
            sum += (double)lc_reduce16_ordered(y + i);
        }
        for (; i < cols; i++) {
            y[i] = expf(x[i] - max);
            sum += (double)y[i];
        }
        const float scale = (float)(1.0 / sum);
        for (i = 0; i < cols; i++) y[i] *= scale;
    }
}

/* ggml_vec_sum_f32: in double, in order */
void lc_op_sum_rows(const lc_node *nd, const lc_task *task) {
    const int64_t cols = nd->ne[0];
    int64_t r0, r1;
    share(nd->ne[1], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = (const float *)nd->src[0] + r * cols;
        double sum = 0.0;
        for (int64_t i = 0; i < cols; i++) sum += (double)x[i];
        ((float *)nd->dst)[r] = (float)sum;
    }
}

/* ---- top k: libstdc++'s std::sort of the indices by v[a] > v[b], step for step ---------------- */

enum { SORT_THRESHOLD = 16 };

static inline int before(const float *v, int32_t a, int32_t b) { return v[a] > v[b]; }
static inline void swap_at(int32_t *a, int64_t i, int64_t j) { const int32_t t = a[i]; a[i] = a[j]; a[j] = t; }

static void move_median_to_first(const float *v, int32_t *a, int64_t result, int64_t i, int64_t j, int64_t k) {
    if (before(v, a[i], a[j])) {
        if (before(v, a[j], a[k])) swap_at(a, result, j);
        else if (before(v, a[i], a[k])) swap_at(a, result, k);
        else swap_at(a, result, i);
    } else if (before(v, a[i], a[k])) swap_at(a, result, i);
    else if (before(v, a[j], a[k])) swap_at(a, result, k);
    else swap_at(a, result, j);
}

static int64_t unguarded_partition(const float *v, int32_t *a, int64_t first, int64_t last, int64_t pivot) {
    for (;;) {
        while (before(v, a[first], a[pivot])) first++;
        last--;
        while (before(v, a[pivot], a[last])) last--;
        if (!(first < last)) return first;
        swap_at(a, first, last);
        first++;
    }
}

static void adjust_heap(const float *v, int32_t *a, int64_t hole, int64_t len, int32_t value) {
    const int64_t top = hole;
    int64_t child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (before(v, a[child], a[child - 1])) child--;
        a[hole] = a[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        a[hole] = a[child - 1];
        hole = child - 1;
    }
    int64_t parent = (hole - 1) / 2;
    while (hole > top && before(v, a[parent], value)) {
        a[hole] = a[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    a[hole] = value;
}

static void heap_sort(const float *v, int32_t *a, int64_t n) {  /* std::partial_sort(first, last, last) */
    for (int64_t parent = (n - 2) / 2; parent >= 0; parent--) adjust_heap(v, a, parent, n, a[parent]);
    while (n > 1) {
        n--;
        const int32_t value = a[n];
        a[n] = a[0];
        adjust_heap(v, a, 0, n, value);
    }
}

static void introsort_loop(const float *v, int32_t *a, int64_t first, int64_t last, int depth) {
    while (last - first > SORT_THRESHOLD) {
        if (depth == 0) {
            heap_sort(v, a + first, last - first);
            return;
        }
        depth--;
        move_median_to_first(v, a, first, first + 1, first + (last - first) / 2, last - 1);
        const int64_t cut = unguarded_partition(v, a, first + 1, last, first);
        introsort_loop(v, a, cut, last, depth);
        last = cut;
    }
}

static void unguarded_linear_insert(const float *v, int32_t *a, int64_t last) {
    const int32_t value = a[last];
    while (before(v, value, a[last - 1])) {
        a[last] = a[last - 1];
        last--;
    }
    a[last] = value;
}

static void insertion_sort(const float *v, int32_t *a, int64_t first, int64_t last) {
    for (int64_t i = first + 1; i < last; i++) {
        if (before(v, a[i], a[first])) {
            const int32_t value = a[i];
            memmove(a + first + 1, a + first, (size_t)(i - first) * sizeof(int32_t));
            a[first] = value;
        } else {
            unguarded_linear_insert(v, a, i);
        }
    }
}

static void std_sort(const float *v, int32_t *a, int64_t n) {
    if (n < 2) return;
    int lg = 0;
    while ((n >> (lg + 1)) > 0) lg++;
    introsort_loop(v, a, 0, n, 2 * lg);
    if (n > SORT_THRESHOLD) {
        insertion_sort(v, a, 0, SORT_THRESHOLD);
        for (int64_t i = SORT_THRESHOLD; i < n; i++) unguarded_linear_insert(v, a, i);
    } else {
        insertion_sort(v, a, 0, n);
    }
}

enum { MAX_SORTED = 512 };  /* llama.cpp's LLAMA_MAX_EXPERTS: the lowering refuses wider rows */

void lc_op_top_k(const lc_node *nd, const lc_task *task) {
    const int64_t cols = nd->ne[0], k = nd->ne[2];
    int32_t order[MAX_SORTED];
    int64_t r0, r1;
    share(nd->ne[1], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        for (int32_t i = 0; i < cols; i++) order[i] = i;
        std_sort((const float *)nd->src[0] + r * cols, order, cols);
        memcpy((int32_t *)nd->dst + r * k, order, (size_t)k * sizeof(int32_t));
    }
}

void lc_op_gather(const lc_node *nd, const lc_task *task) {
    const int64_t cols = nd->ne[0], k = nd->ne[2];
    const float *v = nd->src[0];
    const int32_t *ids = nd->src[1];
    float *y = nd->dst;
    int64_t r0, r1;
    share(nd->ne[1], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t j = 0; j < k; j++) y[r * k + j] = v[r * cols + ids[r * k + j]];
}

/* DeepSeek's group-limited routing: the groups a row's ids do not list become -inf */
void lc_op_mask_groups(const lc_node *nd, const lc_task *task) {
    const int64_t cols = nd->ne[0], k = nd->ne[2], size = nd->ne[3];
    const float *x = nd->src[0];
    const int32_t *ids = nd->src[1];
    float *y = nd->dst;
    int64_t r0, r1;
    share(nd->ne[1], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t i = 0; i < cols; i++) y[r * cols + i] = -INFINITY;
        for (int64_t j = 0; j < k; j++) {
            const int64_t start = (int64_t)ids[r * k + j] * size;
            memcpy(y + r * cols + start, x + r * cols + start, (size_t)size * sizeof(float));
        }
    }
}

/* ggml_mul by the weights, then ggml_add of the slots in order: every product and sum rounded */
void lc_op_weighted_sum(const lc_node *nd, const lc_task *task) {
    const int64_t d = nd->ne[0], k = nd->ne[1];
    const float *x = nd->src[0], *w = nd->src[1];
    float *y = nd->dst;
    int64_t i0, i1;
    share(nd->ne[2] * d, task->ith, task->nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int64_t t = i / d, c = i % d;
        float sum = x[(t * k) * d + c] * w[t * k];
        for (int64_t j = 1; j < k; j++) {
            const float product = x[(t * k + j) * d + c] * w[t * k + j];
            sum = sum + product;
        }
        y[i] = sum;
    }
}

/* ---- the expert-routed product ------------------------------------------------------------- */

void lc_op_moe_map(const lc_node *nd, const lc_task *task) {
    if (task->ith != 0) return;
    const int64_t n = nd->ne[0], k = nd->ne[1], n_expert = nd->ne[2];
    const int32_t *ids = nd->src[0];
    int32_t *counts = nd->dst, *offsets = counts + n_expert, *pairs = offsets + n_expert + 1;
    memset(counts, 0, (size_t)n_expert * sizeof(int32_t));
    for (int64_t i = 0; i < n * k; i++) counts[ids[i]]++;
    offsets[0] = 0;
    for (int64_t e = 0; e < n_expert; e++) offsets[e + 1] = offsets[e] + counts[e];
    memset(counts, 0, (size_t)n_expert * sizeof(int32_t));
    for (int32_t t = 0; t < n; t++) {
        for (int32_t j = 0; j < k; j++) {
            const int32_t e = ids[t * k + j];
            int32_t *pair = pairs + 2 * (offsets[e] + counts[e]++);
            pair[0] = t;
            pair[1] = j;
        }
    }
}

static inline const int32_t *routed_pairs(const int32_t *map, int64_t n_expert) { return map + 2 * n_expert + 1; }

enum { MOE_CHUNKS_PER_THREAD = 4, MOE_CHUNK_ROWS = 16 };

void lc_op_moe_gather(const lc_node *nd, const lc_task *task) {
    const int64_t row_bytes = nd->ne[0], x_slots = nd->ne[1], n_routed = nd->ne[2], n_expert = nd->ne[3];
    const int32_t *pairs = routed_pairs(nd->src[1], n_expert);
    const char *x = nd->src[0];
    char *y = nd->dst;
    int64_t i0, i1;
    share(n_routed, task->ith, task->nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int64_t t = pairs[2 * i], j = x_slots > 1 ? pairs[2 * i + 1] : 0;
        memcpy(y + i * row_bytes, x + (t * x_slots + j) * row_bytes, (size_t)row_bytes);
    }
}

/* One routed token's product with rows [r0, r1) of an expert: vec_dot's bits, as lc_mul_mat_rows
 * gives them to one token (Q4_K by the four-row GEMV) */
static void token_product(lc_node *expert, const char *x_row, float *y_row, int64_t r0, int64_t r1, void *scratch) {
    expert->src[1] = x_row;
    expert->dst = y_row;
    expert->ne[1] = 1;
    lc_mul_mat_rows(expert, r0, r1, NULL, scratch);
}

/* Chunks of weight rows of every routed expert, claimed by the threads as they go. A chunk is the
 * dense matmul of that expert's rows with the activations MOE_GATHER grouped for it, into rows
 * grouped likewise; or, in place (i[1] > 0), each of its tokens' products on its own, read from the
 * activations and written to the token's slot as MOE_SCATTER would put it. */
void lc_op_mul_mat_id(const lc_node *nd, const lc_task *task) {
    const int64_t n_expert = nd->ne[1], n_out = nd->ne[2], x_bytes = nd->ne[3];
    const int64_t n_slots = nd->i[1], x_slots = nd->i[2];
    const int32_t *counts = nd->src[2], *offsets = counts + n_expert, *pairs = routed_pairs(counts, n_expert);
    const int64_t expert_bytes = n_out * nd->row_bytes;
    const char *x = nd->src[1];
    float *y = nd->dst;
    /* every routed expert in as many chunks, of whole blocks of 16 rows (the packed GEMM's unit) */
    int64_t rows = (n_out + (int64_t)task->nth * MOE_CHUNKS_PER_THREAD - 1) / ((int64_t)task->nth * MOE_CHUNKS_PER_THREAD);
    rows = (rows + MOE_CHUNK_ROWS - 1) / MOE_CHUNK_ROWS * MOE_CHUNK_ROWS;
    const int64_t chunks_per_expert = (n_out + rows - 1) / rows;
    int64_t routed = 0;
    for (int64_t e = 0; e < n_expert; e++) routed += counts[e] > 0;
    lc_node expert = *nd;
    expert.op = LC_OP_MUL_MAT;
    expert.i[0] = LC_MM_ROUTED;
    for (int64_t chunk = task->ith; chunk < routed * chunks_per_expert; chunk = atomic_fetch_add(task->next_chunk, 1)) {
        int64_t skip = chunk / chunks_per_expert, e = 0;
        while (counts[e] == 0 || skip-- > 0) e++;
        const int64_t r0 = (chunk % chunks_per_expert) * rows;
        const int64_t r1 = r0 + rows < n_out ? r0 + rows : n_out;
        expert.src[0] = (const char *)nd->src[0] + e * expert_bytes;
        if (n_slots > 0) {
            for (int64_t i = offsets[e]; i < offsets[e + 1]; i++) {
                const int64_t t = pairs[2 * i], slot = pairs[2 * i + 1];
                token_product(&expert, x + (t * x_slots + (x_slots > 1 ? slot : 0)) * x_bytes,
                              y + (t * n_slots + slot) * n_out, r0, r1, task->scratch);
            }
            continue;
        }
        const char *x_e = x + (int64_t)offsets[e] * x_bytes;
        float *y_e = y + (int64_t)offsets[e] * n_out;
        if (nd->type == LC_TYPE_Q4_K && counts[e] < LC_ROUTED_Q4_K_PACKED_MIN_TOKENS) {
            for (int64_t t = 0; t < counts[e]; t++) token_product(&expert, x_e + t * x_bytes, y_e + t * n_out, r0, r1, task->scratch);
        } else {
            expert.src[1] = x_e;
            expert.dst = y_e;
            expert.ne[1] = counts[e];
            lc_mul_mat_rows(&expert, r0, r1, NULL, task->scratch);
        }
    }
}

void lc_op_moe_scatter(const lc_node *nd, const lc_task *task) {
    const int64_t n_out = nd->ne[0], k = nd->ne[1], n_routed = nd->ne[2], n_expert = nd->ne[3];
    const int32_t *pairs = routed_pairs(nd->src[1], n_expert);
    const float *x = nd->src[0];
    float *y = nd->dst;
    int64_t i0, i1;
    share(n_routed, task->ith, task->nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++)
        memcpy(y + (pairs[2 * i] * k + pairs[2 * i + 1]) * n_out, x + i * n_out, (size_t)n_out * sizeof(float));
}
