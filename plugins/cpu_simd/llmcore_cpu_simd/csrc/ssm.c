/* Mamba's recurrent ops. Token t of the batch reads and updates the state row slots[t] of its
 * sequence, so the tokens of one sequence run in batch order; threads share the channels (conv)
 * or heads (scan), each of which owns its part of every state row.
 *
 * Orders are those of the oracle's compiled ggml (its C contracted): the conv window and Mamba's
 * state dot are fused multiply-adds in order; a Mamba-2 state element is s * dA + B * (x dt) with
 * one rounding of the sum, and its dot with C is ggml_vec_dot_f32's (ggml's SIMD loop);
 * softplus is logf(1 + expf(dt)) below 20, with the C library's functions. */
#include <math.h>

#include "lc_kv.h"
#include "lc_ssm.h"

static inline float softplus(float x) { return x > 20.0f ? x : logf(1.0f + expf(x)); }

/* SSM_CONV src0 state [slots][ne0 * (ne2 - 1)], src1 x [ne1][ne0], src2 weight [ne0][ne2], src3 i32
 * slots[ne1]; dst [ne1][ne0] */
void lc_op_ssm_conv(const lc_node *nd, const lc_task *task) {
    const int64_t channels = nd->ne[0], n = nd->ne[1], d_conv = nd->ne[2];
    float *state = (float *)nd->src[0];
    const float *x = nd->src[1], *weight = nd->src[2];
    const int32_t *slots = nd->src[3];
    float *dst = nd->dst;
    int64_t c0, c1;
    share(channels, task->ith, task->nth, &c0, &c1);
    for (int64_t t = 0; t < n; t++) {
        float *row = state + (int64_t)slots[t] * channels * (d_conv - 1);
        for (int64_t c = c0; c < c1; c++) {
            float *window = row + c * (d_conv - 1);
            const float *w = weight + c * d_conv;
            const float xt = x[t * channels + c];
            float sum = 0.0f;
            for (int64_t i = 0; i < d_conv - 1; i++) sum = fmaf(window[i], w[i], sum);
            dst[t * channels + c] = fmaf(xt, w[d_conv - 1], sum);
            for (int64_t i = 0; i + 1 < d_conv - 1; i++) window[i] = window[i + 1];
            window[d_conv - 2] = xt;
        }
    }
}

/* SSM_SCAN src0 state [slots][ne1 heads][ne0 head_dim][ne3 d_state], src1 x [ne2][ne1][ne0], src2 dt
 * [ne2][ne1], src3 A ([ne1 * ne0][ne3], or [ne1] with i[1]), src4 B and src5 C [ne2][i[0] groups][ne3],
 * src6 D ([ne1 * ne0], or [ne1] with i[1]), src7 i32 slots[ne2]; dst y [ne2][ne1 * ne0] = scan + D x */
void lc_op_ssm_scan(const lc_node *nd, const lc_task *task) {
    const int64_t head_dim = nd->ne[0], n_head = nd->ne[1], n = nd->ne[2], d_state = nd->ne[3];
    const int64_t n_group = nd->i[0];
    const int per_head = nd->i[1];
    float *state = (float *)nd->src[0];
    const float *x = nd->src[1], *dt = nd->src[2], *a = nd->src[3], *b = nd->src[4], *c = nd->src[5];
    const float *d = nd->src[6];
    const int32_t *slots = nd->src[7];
    float *y = nd->dst;
    const int64_t width = n_head * head_dim;
    int64_t h0, h1;
    share(n_head, task->ith, task->nth, &h0, &h1);
    for (int64_t t = 0; t < n; t++) {
        float *s_row = state + (int64_t)slots[t] * width * d_state;
        for (int64_t h = h0; h < h1; h++) {
            const float step = softplus(dt[t * n_head + h]);
            const int64_t g = h / (n_head / n_group);
            const float *bt = b + (t * n_group + g) * d_state, *ct = c + (t * n_group + g) * d_state;
            const float decay = per_head ? expf(step * a[h]) : 0.0f;
            for (int64_t j = 0; j < head_dim; j++) {
                const int64_t ii = h * head_dim + j;
                const float xv = x[t * width + ii];
                const float x_dt = xv * step;
                float *s = s_row + ii * d_state;
                float sum = 0.0f;
                if (per_head) {
                    for (int64_t k = 0; k < d_state; k++) s[k] = fmaf(s[k], decay, bt[k] * x_dt);
                    sum = lc_attn_dot_kq(s, LC_TYPE_F32, ct, d_state);
                } else {
                    const float *ak = a + ii * d_state;
                    for (int64_t k = 0; k < d_state; k++) {
                        s[k] = fmaf(s[k], expf(step * ak[k]), bt[k] * x_dt);
                        sum = fmaf(s[k], ct[k], sum);
                    }
                }
                y[t * width + ii] = sum + xv * d[per_head ? h : ii];
            }
        }
    }
}
