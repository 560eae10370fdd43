/* Four of ggml's scale searches with their candidates side by side in vector lanes (GCC vector
 * extensions: AVX2 under -march=native on x86-64, SSE pairs or NEON elsewhere): make_qx_quants'
 * tries (Q6_K, Q3_K; Q4_0 and Q5_0 with an importance matrix), make_qkx2_quants' and
 * make_qkx3_quants' steps (Q2_K, Q4_K and Q5_K without and with one) and quantize_row_iq4_nl_impl's
 * tries (IQ4_NL, IQ4_XS). Each lane performs one candidate's float operations in ggml's order, sums
 * included (a lane's sum runs over the values one by one, as the scalar loop's), so every result
 * rounds as ggml's does and the chosen candidate is the same: the bytes are llama-quantize's. */

#include "lq_quants.h"

#include <math.h>
#include <string.h>

#define LANES 8
typedef float lq_vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t lq_vi __attribute__((vector_size(LANES * sizeof(int32_t))));


static inline lq_vf splat(float value) { return (lq_vf){value, value, value, value, value, value, value, value}; }
static inline lq_vi splat_int(int32_t value) { return (lq_vi){value, value, value, value, value, value, value, value}; }
static inline lq_vf lane_numbers(void) { return (lq_vf){0, 1, 2, 3, 4, 5, 6, 7}; }

/* nearest_int of every lane: the float trick of ggml's, on each lane */
static inline lq_vi nearest_ints(lq_vf value) {
    lq_vf shifted = value + splat(12582912.f);
    lq_vi bits;
    memcpy(&bits, &shifted, sizeof(bits));
    return (bits & splat_int(0x007fffff)) - splat_int(0x00400000);
}

static inline lq_vi clamp_ints(lq_vi value, int32_t low, int32_t high) {
    lq_vi below = value < splat_int(low), above = value > splat_int(high);
    value = (value & ~below) | (splat_int(low) & below);
    return (value & ~above) | (splat_int(high) & above);
}

static inline lq_vf select_floats(lq_vi mask, lq_vf yes, lq_vf no) {
    lq_vi y, n;
    memcpy(&y, &yes, sizeof(y));
    memcpy(&n, &no, sizeof(n));
    lq_vi chosen = (y & mask) | (n & ~mask);
    lq_vf out;
    memcpy(&out, &chosen, sizeof(out));
    return out;
}

static inline lq_vf absolute(lq_vf value) {
    lq_vi bits;
    memcpy(&bits, &value, sizeof(bits));
    bits &= splat_int(0x7fffffff);
    memcpy(&value, &bits, sizeof(value));
    return value;
}

static inline int same_bits(float a, float b) { return memcmp(&a, &b, sizeof(float)) == 0; }

/* make_qx_quants' loop over is = -9..9 (but 0) after its first fit, from *scale, *best and L as
 * that leaves them (n <= 32; weight: each value's w there). */
void lq_qx_tries(int n, int nmax, const float *x, const float *weight, float max, int8_t *L, float *scale,
                 float *best) {
    enum { N_TRIES = 18, N_VECTORS = (N_TRIES + LANES - 1) / LANES };
    static const float tries[N_VECTORS * LANES] = {-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    GGML_ASSERT(n <= 32);
    lq_vi levels[32][N_VECTORS];
    lq_vf sumlx[N_VECTORS], suml2[N_VECTORS];
    for (int v = 0; v < N_VECTORS; ++v) {
        lq_vf is;
        memcpy(&is, tries + v * LANES, sizeof(is));
        const lq_vf iscale = -(splat((float)nmax) + splat(0.1f) * is) / splat(max);
        lq_vf lx = splat(0), l2 = splat(0);
        for (int i = 0; i < n; ++i) {
            const lq_vi l = clamp_ints(nearest_ints(iscale * splat(x[i])), -nmax, nmax - 1);
            levels[i][v] = l;
            const lq_vf fl = __builtin_convertvector(l, lq_vf);
            lx += splat(weight[i] * x[i]) * fl;
            l2 += splat(weight[i]) * fl * fl;
        }
        sumlx[v] = lx, suml2[v] = l2;
    }
    for (int t = 0; t < N_TRIES; ++t) {
        const float lx = sumlx[t / LANES][t % LANES], l2 = suml2[t / LANES][t % LANES];
        if (l2 > 0 && lx * lx > *best * l2) {
            for (int i = 0; i < n; ++i) L[i] = (int8_t)(nmax + levels[i][t / LANES][t % LANES]);
            *scale = lx / l2;
            *best = *scale * lx;
        }
    }
}

/* make_qkx2_quants' (and make_qkx3_quants') loop over is = 0..nstep, from *min, *scale,
 * *best_error and L as its first pass leaves them (n <= 32; weights: each value's w there), eight
 * steps at a time. A step that improves the fit changes min, which the later steps' levels depend
 * on: the next eight are then the steps after it, from the new min. */
void lq_qkx_steps(int n, int nmax, const float *x, const float *weights, float max, float rmin, float rdelta,
                  int nstep, int use_mad, float sum_w, float sum_x, uint8_t *L, float *scale, float *min,
                  float *best_error) {
    GGML_ASSERT(n <= 32);
    lq_vi levels[32];
    int first = 0;
    while (first <= nstep) {
        const float from = *min;
        const lq_vf is = lane_numbers() + splat((float)first);
        const lq_vf iscale = (splat(rmin) + splat(rdelta) * is + splat((float)nmax)) / splat(max - from);
        lq_vf sum_l = splat(0), sum_l2 = splat(0), sum_xl = splat(0);
        for (int i = 0; i < n; ++i) {
            const lq_vi l = clamp_ints(nearest_ints(iscale * splat(x[i] - from)), 0, nmax);
            levels[i] = l;
            const lq_vf fl = __builtin_convertvector(l, lq_vf);
            const lq_vf wl = splat(weights[i]) * fl;
            sum_l += wl;
            sum_l2 += wl * fl;
            sum_xl += wl * splat(x[i]);
        }
        const lq_vf D = splat(sum_w) * sum_l2 - sum_l * sum_l;
        const lq_vi positive = D > splat(0);
        lq_vf this_scale = (splat(sum_w) * sum_xl - splat(sum_x) * sum_l) / D;
        lq_vf this_min = (sum_l2 * splat(sum_x) - sum_l * sum_xl) / D;
        const lq_vi min_positive = this_min > splat(0);
        this_scale = select_floats(min_positive, sum_xl / sum_l2, this_scale);
        this_min = select_floats(min_positive, splat(0), this_min);
        lq_vf error = splat(0);
        for (int i = 0; i < n; ++i) {
            lq_vf diff = this_scale * __builtin_convertvector(levels[i], lq_vf) + this_min - splat(x[i]);
            diff = use_mad ? absolute(diff) : diff * diff;
            error += splat(weights[i]) * diff;
        }
        int next = MIN(first + LANES, nstep + 1);
        for (int is = first; is < next; ++is) {
            const int lane = is - first;
            if (!positive[lane] || !(error[lane] < *best_error)) continue;
            for (int i = 0; i < n; ++i) L[i] = (uint8_t)levels[i][lane];
            *best_error = error[lane];
            *scale = this_scale[lane];
            if (!same_bits(this_min[lane], *min)) next = is + 1; /* the steps after it: again, from the new min */
            *min = this_min[lane];
        }
        first = next;
    }
}

/* values[best_index_int8(16, values, x)] of every lane (table: the 16 values as floats) */
static inline lq_vf nearest_values(lq_vf x, const lq_vf table[2], const float values[16]) {
    lq_vi below = splat_int(0);
    for (int k = 1; k < 15; ++k) below -= ~(x < splat(values[k])); /* the binary search's ml: !(x < val) */
    const lq_vf low = __builtin_shuffle(table[0], table[1], below);
    const lq_vf high = __builtin_shuffle(table[0], table[1], below + splat_int(1));
    const lq_vf nearer = select_floats(x - low < high - x, low, high);
    return select_floats(x <= splat(values[0]), splat(values[0]), select_floats(x >= splat(values[15]), splat(values[15]), nearer));
}

/* quantize_row_iq4_nl_impl's loop over itry = -ntry..ntry for one block of block_size values
 * (<= 32; ntry < 16): *d and *best as it leaves them. */
void lq_iq4_tries(int block_size, const float *xb, const float *weight, const int8_t *values, float max, int ntry,
                  float *d, float *best) {
    enum { MAX_TRY_VECTORS = 4 };
    GGML_ASSERT(block_size <= 32 && ntry < MAX_TRY_VECTORS * LANES / 2);
    float levels[16];
    for (int k = 0; k < 16; ++k) levels[k] = values[k];
    lq_vf table[2];
    memcpy(table, levels, sizeof(table));
    lq_vf sumqx[MAX_TRY_VECTORS], sumq2[MAX_TRY_VECTORS];
    const int n_tries = 2 * ntry + 1, n_vectors = (n_tries + LANES - 1) / LANES;
    for (int v = 0; v < n_vectors; ++v) {
        /* id = (itry + values[0])/max: an int sum, then a float division */
        const lq_vi itry = __builtin_convertvector(lane_numbers(), lq_vi) + splat_int(v * LANES - ntry + values[0]);
        const lq_vf id = __builtin_convertvector(itry, lq_vf) / splat(max);
        lq_vf qx = splat(0), q2 = splat(0);
        for (int j = 0; j < block_size; ++j) {
            const lq_vf q = nearest_values(id * splat(xb[j]), table, levels);
            const lq_vf wq = splat(weight[j]) * q;
            qx += wq * splat(xb[j]);
            q2 += wq * q;
        }
        sumqx[v] = qx, sumq2[v] = q2;
    }
    for (int t = 0; t < n_tries; ++t) {
        const float qx = sumqx[t / LANES][t % LANES], q2 = sumq2[t / LANES][t % LANES];
        if (q2 > 0 && qx * qx > *best * q2) {
            *d = qx / q2;
            *best = *d * qx;
        }
    }
}
