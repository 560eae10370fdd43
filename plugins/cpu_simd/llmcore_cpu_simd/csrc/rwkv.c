/* RWKV's ops. Token t of the batch reads and updates the state row slots[t] of its sequence, so the
 * tokens of one sequence run in batch order; threads share the columns (token shift) or heads (wkv),
 * each of which owns its part of every state row.
 *
 * Orders are those of the oracle's ggml (ggml_compute_forward_rwkv_wkv6/_wkv7, AVX-512): WKV-6's
 * state of a head is [key i][value j], updated with fused multiply-adds, its output summed key by
 * key; WKV-7's is [value i][key j], whose dots over keys are ggml_vec_dot_f32's SIMD loop. */
#include <math.h>

#include "lc_kv.h"
#include "lc_rwkv.h"

/* EXP src0 [ne0]: the C library's expf, as ggml's unary op */
void lc_op_exp(const lc_node *nd, const lc_task *task) {
    const float *x = nd->src[0];
    float *y = nd->dst;
    int64_t i0, i1;
    share(nd->ne[0], task->ith, task->nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) y[i] = expf(x[i]);
}

/* L2_NORM src0 [ne1][ne0], eps f[0]: x / max(sqrtf(sum), eps), the squares rounded to float and
 * added in double (ggml_compute_forward_l2_norm_f32) */
void lc_op_l2_norm(const lc_node *nd, const lc_task *task) {
    const int64_t cols = nd->ne[0];
    const float *x = nd->src[0];
    float *y = nd->dst;
    int64_t r0, r1;
    share(nd->ne[1], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * cols;
        double sum = 0.0;
        for (int64_t i = 0; i < cols; i++) {
            const float square = xr[i] * xr[i];
            sum += (double)square;
        }
        const float scale = 1.0f / fmaxf(sqrtf((float)sum), nd->f[0]);
        for (int64_t i = 0; i < cols; i++) y[r * cols + i] = xr[i] * scale;
    }
}

/* TOKEN_SHIFT src0 state [slots][ne0], src1 x [ne1][ne0], src2 i32 slots[ne1]; dst [ne1][ne0]: each
 * row the one before it in its sequence (the state row for the first); the state keeps the last */
void lc_op_token_shift(const lc_node *nd, const lc_task *task) {
    const int64_t width = nd->ne[0], n = nd->ne[1];
    float *state = (float *)nd->src[0];
    const float *x = nd->src[1];
    const int32_t *slots = nd->src[2];
    float *dst = nd->dst;
    int64_t c0, c1;
    share(width, task->ith, task->nth, &c0, &c1);
    for (int64_t t = 0; t < n; t++) {
        float *row = state + (int64_t)slots[t] * width;
        for (int64_t c = c0; c < c1; c++) {
            dst[t * width + c] = row[c];
            row[c] = x[t * width + c];
        }
    }
}

/* RWKV-6's wkv and gated linear attention: per key i of a head, S_ij' = S_ij w_i + k_i v_j, and the
 * output adds, key by key, r_i (k_i v_j u_i + S_ij) (RWKV-6, bonus u) or r_i S_ij' (u NULL: gated
 * linear attention, r = q scale); ggml's fused multiply-adds in both */
static void linear_attention(const lc_node *nd, const lc_task *task, float *state, const float *k, const float *v,
                             const float *r, float r_scale, const float *u, const float *w, const int32_t *slots) {
    const int64_t head = nd->ne[0], n_head = nd->ne[1], n = nd->ne[2];
    float *y = nd->dst;
    const int64_t width = n_head * head;
    int64_t h0, h1;
    share(n_head, task->ith, task->nth, &h0, &h1);
    for (int64_t t = 0; t < n; t++) {
        float *s_row = state + (int64_t)slots[t] * width * head;
        for (int64_t h = h0; h < h1; h++) {
            const int64_t th = t * width + h * head;
            float *out = y + th;
            const float *vt = v + th;
            for (int64_t j = 0; j < head; j++) out[j] = 0.0f;
            for (int64_t i = 0; i < head; i++) {
                const float k_i = k[th + i], r_i = u ? r[th + i] : r[th + i] * r_scale, w_i = w[th + i];
                const float u_i = u ? u[h * head + i] : 0.0f;
                float *s = s_row + (h * head + i) * head;
                for (int64_t j = 0; j < head; j++) {
                    const float kv = vt[j] * k_i;
                    const float prev = s[j];
                    const float next = fmaf(prev, w_i, kv);
                    out[j] = fmaf(u ? fmaf(kv, u_i, prev) : next, r_i, out[j]);
                    s[j] = next;
                }
            }
        }
    }
}

/* RWKV_WKV6 src0 state [slots][ne1 heads][ne0 key][ne0 value], src1 k, src2 v, src3 r, src5 w
 * [ne2][ne1][ne0], src4 u [ne1][ne0], src6 i32 slots[ne2]; dst y [ne2][ne1 * ne0]:
 * y_j = sum over i of r_i (k_i v_j u_i + S_ij), then S_ij = S_ij w_i + k_i v_j */
void lc_op_rwkv_wkv6(const lc_node *nd, const lc_task *task) {
    linear_attention(nd, task, (float *)nd->src[0], nd->src[1], nd->src[2], nd->src[3], 1.0f, nd->src[4], nd->src[5],
                     nd->src[6]);
}

/* RWKV_WKV7 src0 state [slots][ne1 heads][ne0 value][ne0 key], src1 r, src2 w, src3 k, src4 v, src5 a,
 * src6 b [ne2][ne1][ne0], src7 i32 slots[ne2]; dst y [ne2][ne1 * ne0]: per value row i,
 * S_ij = S_ij w_j + v_i k_j + (a . S_i) b_j, then y_i = S_i . r */
void lc_op_rwkv_wkv7(const lc_node *nd, const lc_task *task) {
    const int64_t head = nd->ne[0], n_head = nd->ne[1], n = nd->ne[2];
    float *state = (float *)nd->src[0];
    const float *r = nd->src[1], *w = nd->src[2], *k = nd->src[3], *v = nd->src[4], *a = nd->src[5];
    const float *b = nd->src[6];
    const int32_t *slots = nd->src[7];
    float *y = nd->dst;
    const int64_t width = n_head * head;
    int64_t h0, h1;
    share(n_head, task->ith, task->nth, &h0, &h1);
    for (int64_t t = 0; t < n; t++) {
        float *s_row = state + (int64_t)slots[t] * width * head;
        for (int64_t h = h0; h < h1; h++) {
            const int64_t th = t * width + h * head;
            for (int64_t i = 0; i < head; i++) {
                float *s = s_row + (h * head + i) * head;
                const float v_i = v[th + i];
                const float sa = lc_attn_dot_kq(s, LC_TYPE_F32, a + th, head);
                for (int64_t j = 0; j < head; j++) {
                    const float kv = v_i * k[th + j];
                    s[j] = fmaf(sa, b[th + j], fmaf(s[j], w[th + j], kv));
                }
                y[th + i] = lc_attn_dot_kq(s, LC_TYPE_F32, r + th, head);
            }
        }
    }
}

/* GATED_LINEAR_ATTN src0 state [slots][ne1 heads][ne0 key][ne0 value], src1 k, src2 v, src3 q, src4 g
 * [ne2][ne1][ne0], src5 i32 slots[ne2], f[0] scale; dst y [ne2][ne1 * ne0] (ggml_gated_linear_attn):
 * S_ij = S_ij g_i + k_i v_j, then y_j = sum over i of S_ij (q_i scale) */
void lc_op_gated_linear_attn(const lc_node *nd, const lc_task *task) {
    linear_attention(nd, task, (float *)nd->src[0], nd->src[1], nd->src[2], nd->src[3], nd->f[0], NULL, nd->src[4],
                     nd->src[5]);
}
