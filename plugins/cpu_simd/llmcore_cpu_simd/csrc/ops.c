/* The op kernels of the graph executor. Each runs thread ith's share of one node; the executor
 * puts a barrier between nodes. Numerics follow the reference backend (llama.cpp's CPU math):
 * norms accumulate in double, attention rounds queries and probabilities to f16, rope uses
 * ggml's running product for the angles. */
#include <math.h>
#include <string.h>

#include "lc_graph.h"
#include "lc_kernels.h"
#include "lc_simd.h"

/* thread ith's half-open share [*begin, *end) of n items */
static inline void share(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    const int64_t per = (n + nth - 1) / nth;
    *begin = per * ith < n ? per * ith : n;
    *end = *begin + per < n ? *begin + per : n;
}

/* ---- rows in, rows out --------------------------------------------------------------------- */

static void op_get_rows(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv; (void)scratch;
    const int64_t cols = nd->ne[0];
    const int32_t *ids = nd->src[1];
    const char *table = nd->src[0];
    float *dst = nd->dst;
    const lc_dequant_row_fn dequant = lc_traits[nd->type].dequant_row;
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) dequant(table + (int64_t)ids[r] * nd->row_bytes, dst + r * cols, cols);
}

static void op_quantize(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv; (void)scratch;
    const int64_t cols = nd->ne[0];
    const float *src = nd->src[0];
    char *dst = nd->dst;
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) lc_quantize_row(nd->type, src + r * cols, dst + r * nd->row_bytes, cols);
}

/* Tokens are processed in tiles so a thread's weight rows are re-read from cache, not memory;
 * each output element is one (multi-)vec_dot call whatever the batch, hence batch-independent. */
enum { MM_TOKEN_TILE = 16 };

static void op_mul_mat(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv; (void)scratch;
    const int64_t k = nd->ne[0], m = nd->ne[1], n = nd->ne[2], x_bytes = nd->ne[3];
    const char *w = nd->src[0], *x = nd->src[1];
    float *y = nd->dst;
    const lc_vec_dot_multi_fn multi = lc_vec_dot_multi_for(nd->type);
    const lc_vec_dot_fn dot = lc_traits[nd->type].vec_dot;
    int64_t r0, r1;
    share(n, ith, nth, &r0, &r1);
    for (int64_t t0 = 0; t0 < m; t0 += MM_TOKEN_TILE) {
        const int64_t t1 = t0 + MM_TOKEN_TILE < m ? t0 + MM_TOKEN_TILE : m;
        for (int64_t r = r0; r < r1; r++) {
            const char *w_row = w + r * nd->row_bytes;
            for (int64_t t = t0; t < t1; t += LC_MULTI_MAX) {
                const int nx = (int)(t1 - t < LC_MULTI_MAX ? t1 - t : LC_MULTI_MAX);
                float s[LC_MULTI_MAX];
                if (multi) multi((int)k, s, w_row, x + t * x_bytes, (size_t)x_bytes, nx);
                else for (int j = 0; j < nx; j++) dot((int)k, &s[j], w_row, x + (t + j) * x_bytes);
                for (int j = 0; j < nx; j++) y[(t + j) * n + r] = s[j];
            }
        }
    }
}

/* ---- elementwise --------------------------------------------------------------------------- */

#define BROADCAST_OP(name, expr)                                                             \
    static void name(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {    \
        (void)n_kv; (void)scratch;                                                           \
        const float *a = nd->src[0], *b = nd->src[1];                                        \
        float *y = nd->dst;                                                                  \
        const int64_t nb = nd->ne[1];                                                        \
        int64_t i, end;                                                                      \
        share(nd->ne[0], ith, nth, &i, &end);                                                \
        while (i < end) {                                                                    \
            const int64_t j = i % nb;                                                        \
            const int64_t len = nb - j < end - i ? nb - j : end - i;                         \
            const float *bj = b + j;                                                         \
            for (int64_t e = 0; e < len; e++) y[i + e] = (expr);                             \
            i += len;                                                                        \
        }                                                                                    \
    }

BROADCAST_OP(op_add, a[i + e] + bj[e])
BROADCAST_OP(op_mul, a[i + e] * bj[e])

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

static inline float gelu(float x) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi), ggml's tanh approximation */
    return 0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x)));
}

#define UNARY_OP(name, expr)                                                                 \
    static void name(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {    \
        (void)n_kv; (void)scratch;                                                           \
        const float *a = nd->src[0], *b = nd->src[1];                                        \
        (void)b;                                                                             \
        float *y = nd->dst;                                                                  \
        int64_t i0, i1;                                                                      \
        share(nd->ne[0], ith, nth, &i0, &i1);                                                \
        for (int64_t i = i0; i < i1; i++) y[i] = (expr);                                     \
    }

UNARY_OP(op_scale, a[i] * nd->f[0])
UNARY_OP(op_silu, silu(a[i]))
UNARY_OP(op_gelu, gelu(a[i]))
UNARY_OP(op_swiglu, silu(a[i]) * b[i])
UNARY_OP(op_geglu, gelu(a[i]) * b[i])

/* ---- norms --------------------------------------------------------------------------------- */

static void op_rms_norm(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv; (void)scratch;
    const int64_t cols = nd->ne[0];
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) {
        const float *x = (const float *)nd->src[0] + r * cols;
        float *y = (float *)nd->dst + r * cols;
        double sum = 0.0;
        for (int64_t i = 0; i < cols; i++) sum += (double)(x[i] * x[i]);
        const float scale = 1.0f / sqrtf((float)(sum / (double)cols) + nd->f[0]);
        for (int64_t i = 0; i < cols; i++) y[i] = x[i] * scale;
    }
}

static void op_norm(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv; (void)scratch;
    const int64_t cols = nd->ne[0];
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) {
        const float *x = (const float *)nd->src[0] + r * cols;
        float *y = (float *)nd->dst + r * cols;
        double sum = 0.0;
        for (int64_t i = 0; i < cols; i++) sum += (double)x[i];
        const float mean = (float)(sum / (double)cols);
        double var = 0.0;
        for (int64_t i = 0; i < cols; i++) {
            y[i] = x[i] - mean;
            var += (double)(y[i] * y[i]);
        }
        const float scale = 1.0f / sqrtf((float)(var / (double)cols) + nd->f[0]);
        for (int64_t i = 0; i < cols; i++) y[i] *= scale;
    }
}

/* ---- rope ---------------------------------------------------------------------------------- */

static void op_rope(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv;
    const int64_t head_dim = nd->ne[0], n_head = nd->ne[1];
    const int n_rot = nd->i[0], neox = nd->i[1], half = n_rot / 2;
    const float freq_base = nd->f[0], freq_scale = nd->f[1], ext_factor = nd->f[2];
    const float corr_low = nd->f[4], corr_high = nd->f[5];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float mscale = nd->f[3];
    if (ext_factor != 0.0f) mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
    float *cos_t = scratch, *sin_t = scratch + half;
    const int32_t *pos = nd->src[1];
    int64_t a, b;
    share(nd->ne[2], ith, nth, &a, &b);
    for (int64_t t = a; t < b; t++) {
        float theta_extrap = (float)pos[t];
        for (int i = 0; i < half; i++) {
            const float theta_interp = freq_scale * theta_extrap;
            float theta = theta_interp;
            if (ext_factor != 0.0f) {
                const float y = ((float)i - corr_low) / fmaxf(0.001f, corr_high - corr_low);
                const float ramp_mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;
                theta = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
            }
            cos_t[i] = cosf(theta) * mscale;
            sin_t[i] = sinf(theta) * mscale;
            theta_extrap *= theta_scale;
        }
        for (int64_t h = 0; h < n_head; h++) {
            const float *x = (const float *)nd->src[0] + (t * n_head + h) * head_dim;
            float *y = (float *)nd->dst + (t * n_head + h) * head_dim;
            for (int i = 0; i < half; i++) {
                const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const float x0 = x[i0], x1 = x[i1];
                y[i0] = x0 * cos_t[i] - x1 * sin_t[i];
                y[i1] = x0 * sin_t[i] + x1 * cos_t[i];
            }
            for (int64_t i = n_rot; i < head_dim; i++) y[i] = x[i];
        }
    }
}

/* ---- KV cache ------------------------------------------------------------------------------ */

static void op_kv_store(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    (void)n_kv; (void)scratch;
    const int64_t width = nd->ne[0];
    const int32_t *cells = nd->src[1];
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) {
        const float *x = (const float *)nd->src[0] + r * width;
        if (nd->type == LC_TYPE_F16) lc_fp32_to_fp16_row(x, (lc_fp16_t *)nd->dst + (int64_t)cells[r] * width, width);
        else memcpy((float *)nd->dst + (int64_t)cells[r] * width, x, (size_t)width * sizeof(float));
    }
}

/* ---- attention ----------------------------------------------------------------------------- */

static inline float dot_q_k(const float *q, const void *k, int type, int64_t n) {
    float s;
    if (type == LC_TYPE_F32) {
        lc_vec_dot_f32((int)n, &s, k, q);
        return s;
    }
    const lc_fp16_t *kh = k;
    int64_t i = 0;
    float sum = 0.0f;
#if defined(LC_AVX512)
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kh + i))), acc);
    sum = _mm512_reduce_add_ps(acc);
#elif defined(LC_AVX2)
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kh + i))), acc);
    sum = lc_hsum256(acc);
#endif
    for (; i < n; i++) sum += q[i] * LC_H2F(kh[i]);
    return sum;
}

/* y += p * v */
static inline void axpy_v(float *y, float p, const void *v, int type, int64_t n) {
    int64_t i = 0;
    if (type == LC_TYPE_F32) {
        const float *vf = v;
        for (; i < n; i++) y[i] += p * vf[i];
        return;
    }
    const lc_fp16_t *vh = v;
#if defined(LC_AVX512)
    const __m512 pv = _mm512_set1_ps(p);
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(pv, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vh + i))), _mm512_loadu_ps(y + i)));
#elif defined(LC_AVX2)
    const __m256 pv = _mm256_set1_ps(p);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(pv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vh + i))), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++) y[i] += p * LC_H2F(vh[i]);
}

static void op_attention(const lc_node *nd, int ith, int nth, int32_t n_kv, float *scratch) {
    const int64_t head_dim = nd->ne[0], n_head = nd->ne[1], n_ctx = nd->ne[3];
    const int64_t n_head_kv = nd->i[0], group = n_head / n_head_kv, kv_width = n_head_kv * head_dim;
    const size_t elt = nd->type == LC_TYPE_F16 ? sizeof(lc_fp16_t) : sizeof(float);
    const char *k_cache = nd->src[1], *v_cache = nd->src[2];
    const float scale = nd->f[0];
    float *q16 = scratch, *scores = scratch + head_dim;
    int64_t a, b;
    share(nd->ne[2] * n_head, ith, nth, &a, &b);
    for (int64_t item = a; item < b; item++) {
        const int64_t t = item / n_head, h = item % n_head, kvh = h / group;
        const float *q = (const float *)nd->src[0] + (t * n_head + h) * head_dim;
        const float *mask = (const float *)nd->src[3] + t * n_ctx;
        float *y = (float *)nd->dst + (t * n_head + h) * head_dim;
        for (int64_t i = 0; i < head_dim; i++) q16[i] = lc_fp16_to_fp32(lc_fp32_to_fp16(q[i]));
        float max = -INFINITY;
        for (int64_t j = 0; j < n_kv; j++) {
            if (mask[j] == -INFINITY) {
                scores[j] = -INFINITY;
                continue;
            }
            const void *k = k_cache + (j * kv_width + kvh * head_dim) * elt;
            scores[j] = dot_q_k(q16, k, nd->type, head_dim) * scale + mask[j];
            if (scores[j] > max) max = scores[j];
        }
        memset(y, 0, (size_t)head_dim * sizeof(float));
        if (max == -INFINITY) continue;  /* nothing visible: a padding row */
        double sum = 0.0;
        for (int64_t j = 0; j < n_kv; j++) {
            scores[j] = scores[j] == -INFINITY ? 0.0f : expf(scores[j] - max);
            sum += (double)scores[j];
        }
        const float total = (float)sum;
        for (int64_t j = 0; j < n_kv; j++) {
            const float p = lc_fp16_to_fp32(lc_fp32_to_fp16(scores[j] / total));
            if (p != 0.0f) axpy_v(y, p, v_cache + (j * kv_width + kvh * head_dim) * elt, nd->type, head_dim);
        }
    }
}

const lc_op_fn lc_ops[LC_OP_COUNT] = {
    [LC_OP_GET_ROWS] = op_get_rows, [LC_OP_QUANTIZE] = op_quantize, [LC_OP_MUL_MAT] = op_mul_mat,
    [LC_OP_ADD] = op_add, [LC_OP_MUL] = op_mul, [LC_OP_SCALE] = op_scale,
    [LC_OP_RMS_NORM] = op_rms_norm, [LC_OP_NORM] = op_norm, [LC_OP_ROPE] = op_rope,
    [LC_OP_SILU] = op_silu, [LC_OP_GELU] = op_gelu, [LC_OP_SWIGLU] = op_swiglu,
    [LC_OP_GEGLU] = op_geglu, [LC_OP_KV_STORE] = op_kv_store, [LC_OP_ATTENTION] = op_attention,
};
