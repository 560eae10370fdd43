// The KV cache: rows stored in the cache's type, and attention over its first n_kv cells.

DEVICE float load_f16(GLOBAL const u8* cache, u32 i) {
    return f16_to_f32(((GLOBAL const u16*)cache)[i]);
}

DEVICE float load_f32(GLOBAL const u8* cache, u32 i) {
    return ((GLOBAL const float*)cache)[i];
}

DEVICE void store_f16(GLOBAL u8* cache, u32 i, float value) {
    ((GLOBAL u16*)cache)[i] = f32_to_f16(value);
}

DEVICE void store_f32(GLOBAL u8* cache, u32 i, float value) {
    ((GLOBAL float*)cache)[i] = value;
}

// for T in f16 f32
// cache[cells[i], :] = x[i, :], rounded to the cache's type
KERNEL void kv_store_{T}(GLOBAL const float* x, GLOBAL const i32* cells, GLOBAL u8* cache, u32 n, u32 width) {
    u32 idx = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (idx >= n * width) {
        return;
    }
    u32 i = idx / width;
    store_{T}(cache, (u32)cells[i] * width + idx % width, x[idx]);
}

// the largest of the workgroup's values (`red`: WG floats of workgroup memory), on every work-item
DEVICE float group_max(SHARED_PTR float* red, float mine, u32 t) {
    red[t] = mine;
    BARRIER();
    for (u32 stride = WG / 2u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            red[t] = fmaxf(red[t], red[t + stride]);
        }
        BARRIER();
    }
    float largest = red[0];
    BARRIER();
    return largest;
}

// for T in f16 f32
DEVICE float score_{T}(GLOBAL const u8* k, GLOBAL const float* mask_row, u32 cell, u32 base, SHARED_PTR const float* qs,
                       u32 head_dim, float scale, float softcap) {
    float m = mask_row[cell];
    if (m == NEG_INF) {
        return NEG_INF;
    }
    float dot = 0.0f;
    for (u32 d = 0u; d < head_dim; d++) {
        dot = fmaf(load_{T}(k, base + d), qs[d], dot);
    }
    if (softcap > 0.0f) {
        dot = softcap * tanhf(dot * (1.0f / softcap));
    }
    return dot * scale + m;
}

// for T in f16 f32
// softmax(q k^T * scale + mask) v over the first n_kv cells (step[0]), one workgroup per (token,
// query head); query head h reads KV head h / group. As llama.cpp's CPU build computes it without
// flash attention: q rounded to f16 for an f16 cache; with softcap > 0 the products become
// softcap * tanh(q.k / softcap); the exponentials ggml's expf, their sum in acc_t; the
// probabilities scaled by float(1 / sum) and, for an f16 cache, rounded to f16. Three passes over
// the cells, each work-item scoring cells t, t + 64, ... (scores are recomputed, not stored): the
// maximum, the sum, then 64 cells at a time the probabilities, which every work-item applies to
// its head dims t, t + 64, ... of V.
KERNEL void attention_{T}(GLOBAL const float* q, GLOBAL const u8* k, GLOBAL const u8* v, GLOBAL const float* mask,
                          GLOBAL const u32* step, GLOBAL float* y, u32 n_head, u32 head_dim, u32 group,
                          u32 kv_width, u32 mask_stride, float scale, float softcap) {
    SHARED float qs[256];
    SHARED float chunk[WG];
    SHARED float peak[WG];
    SHARED acc_t total[WG];
    u32 token = GROUP_ID(0) / n_head;
    u32 head = GROUP_ID(0) % n_head;
    u32 t = LOCAL_ID(0);
    u32 n_kv = step[0];
    u32 kv_off = (head / group) * head_dim;
    u32 q_base = (token * n_head + head) * head_dim;
    GLOBAL const float* mask_row = mask + token * mask_stride;
    for (u32 d = t; d < head_dim; d += WG) {
        qs[d] = {T}_ROUNDS_Q ? round_f16(q[q_base + d]) : q[q_base + d];
    }
    BARRIER();
    float row_max = NEG_INF;
    for (u32 j = t; j < n_kv; j += WG) {
        row_max = fmaxf(row_max, score_{T}(k, mask_row, j, j * kv_width + kv_off, qs, head_dim, scale, softcap));
    }
    row_max = group_max(peak, row_max, t);
    if (row_max == NEG_INF) {  // nothing visible: a padding row (the same on every work-item)
        for (u32 d = t; d < head_dim; d += WG) {
            y[q_base + d] = 0.0f;
        }
        return;
    }
    acc_t sum = 0.0f;
    for (u32 j = t; j < n_kv; j += WG) {
        float s = score_{T}(k, mask_row, j, j * kv_width + kv_off, qs, head_dim, scale, softcap);
        sum += (acc_t)(s == NEG_INF ? 0.0f : expf_ggml(s - row_max));
    }
    total[t] = sum;
    BARRIER();
    for (u32 stride = WG / 2u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            total[t] += total[t + stride];
        }
        BARRIER();
    }
    float inv = (float)((acc_t)1.0f / total[0]);
    float acc[256u / WG];
    for (u32 i = 0u; i < 256u / WG; i++) {
        acc[i] = 0.0f;
    }
    for (u32 c0 = 0u; c0 < n_kv; c0 += WG) {
        u32 j = c0 + t;
        float s = j < n_kv ? score_{T}(k, mask_row, j, j * kv_width + kv_off, qs, head_dim, scale, softcap) : NEG_INF;
        float p = (s == NEG_INF ? 0.0f : expf_ggml(s - row_max)) * inv;
        chunk[t] = {T}_ROUNDS_Q ? round_f16(p) : p;
        BARRIER();
        u32 count = min(WG, n_kv - c0);
        for (u32 i = 0u; i < 256u / WG; i++) {
            u32 d = t + WG * i;
            if (d < head_dim) {
                float a = acc[i];
                for (u32 jj = 0u; jj < count; jj++) {
                    a = fmaf(chunk[jj], load_{T}(v, (c0 + jj) * kv_width + kv_off + d), a);
                }
                acc[i] = a;
            }
        }
        BARRIER();
    }
    for (u32 i = 0u; i < 256u / WG; i++) {
        u32 d = t + WG * i;
        if (d < head_dim) {
            y[q_base + d] = acc[i];
        }
    }
}

// -- llama.cpp's CPU order, for CPU devices ----------------------------------------------------------

// _mm512_reduce_add_ps in GCC's order
DEVICE float reduce16(PRIVATE const float* a) {
    float t3[8];
    for (u32 i = 0u; i < 8u; i++) {
        t3[i] = a[i + 8u] + a[i];
    }
    float t6[4];
    for (u32 i = 0u; i < 4u; i++) {
        t6[i] = t3[i + 4u] + t3[i];
    }
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// 64 lanes as ggml_vec_dot_f16 leaves them: (l + l+32) + (l+16 + l+48), then the tree
DEVICE float reduce64(PRIVATE const float* a) {
    float s16[16];
    for (u32 l = 0u; l < 16u; l++) {
        s16[l] = (a[l] + a[l + 32u]) + (a[l + 16u] + a[l + 48u]);
    }
    return reduce16(s16);
}

// for T in f16 f32
// q . k[cell] as llama.cpp's CPU build sums it, q already rounded (in device memory: PoCL
// miscompiles these loops over a workgroup-memory copy): tinyBLAS's 16 lanes, fused, for a query
// batched with others of its sequence over an f16 cache (ggml skips tinyBLAS for a q that already
// has K's type); else ggml_vec_dot's 64 lanes, the dims past a multiple of 64 added in double
// (f16: ggml_float) or fused in float (f32: ggml_vec_dot_f32)
DEVICE float ordered_score_{T}(GLOBAL const u8* k, GLOBAL const float* q, GLOBAL const float* mask_row, u32 cell,
                               u32 base, u32 head_dim, u32 batched, float scale) {
    float m = mask_row[cell];
    if (m == NEG_INF) {
        return NEG_INF;
    }
    float dot;
    if (batched != 0u && {T}_ROUNDS_Q) {
        float lanes[16];
        for (u32 l = 0u; l < 16u; l++) {
            lanes[l] = 0.0f;
        }
        for (u32 i = 0u; i < head_dim; i += 16u) {
            for (u32 l = 0u; l < 16u && i + l < head_dim; l++) {
                lanes[l] = fmaf(load_{T}(k, base + i + l), q[i + l], lanes[l]);
            }
        }
        dot = reduce16(lanes);
    } else {
        float lanes[64];
        for (u32 l = 0u; l < 64u; l++) {
            lanes[l] = 0.0f;
        }
        u32 whole = head_dim & ~63u;
        for (u32 i = 0u; i < whole; i += 64u) {
            for (u32 l = 0u; l < 64u; l++) {
                lanes[l] = fmaf(load_{T}(k, base + i + l), q[i + l], lanes[l]);
            }
        }
        dot = reduce64(lanes);
        if ({T}_ROUNDS_Q) {
            acc_t rest = dot;
            for (u32 i = whole; i < head_dim; i++) {
                rest += (acc_t)(load_{T}(k, base + i) * q[i]);
            }
            dot = (float)rest;
        } else {
            for (u32 i = whole; i < head_dim; i++) {
                dot = fmaf(load_{T}(k, base + i), q[i], dot);
            }
        }
    }
    float s = dot * scale;
    return s + m;
}

DEVICE i32 first_visible(GLOBAL const float* mask_row, u32 n_kv) {
    for (u32 j = 0u; j < n_kv; j++) {
        if (mask_row[j] != NEG_INF) {
            return (i32)j;
        }
    }
    return -1;
}

// for T in f16 f32
// The same attention value for value as llama.cpp's CPU build computes it (the reference
// backend's order), for CPU devices: q . k as ordered_score says, a query being batched when the
// rows before or after it see the same first cell; the exponentials summed sixteen cells at a time
// by _mm512_reduce_add_ps's tree, each group's sum added in order in acc_t; the V sums keeping cell
// j in lane j % 16 (tinyBLAS, batched) or j % 64 (ggml_vec_dot_f16). qr is q rounded as attention
// reads it (f16 for an f16 cache). No soft-capping (the lowering asks).
KERNEL void attention_ordered_{T}(GLOBAL const float* qr, GLOBAL const u8* k, GLOBAL const u8* v,
                                  GLOBAL const float* mask, GLOBAL const u32* step, GLOBAL float* y, u32 n,
                                  u32 n_head, u32 head_dim, u32 group, u32 kv_width, u32 mask_stride, float scale) {
    SHARED float chunk[WG];
    SHARED float red[WG];
    SHARED i32 visible_from[3];
    u32 token = GROUP_ID(0) / n_head;
    u32 head = GROUP_ID(0) % n_head;
    u32 t = LOCAL_ID(0);
    u32 n_kv = step[0];
    u32 kv_off = (head / group) * head_dim;
    u32 q_base = (token * n_head + head) * head_dim;
    GLOBAL const float* q = qr + q_base;
    GLOBAL const float* mask_row = mask + token * mask_stride;
    if (t < 3u) {  // rows token - 1, token, token + 1; -2 where there is none
        u32 other = token + t;
        visible_from[t] = other >= 1u && other - 1u < n ? first_visible(mask + (other - 1u) * mask_stride, n_kv) : -2;
    }
    BARRIER();
    u32 batched = visible_from[0] == visible_from[1] || visible_from[2] == visible_from[1];

    float row_max = NEG_INF;
    for (u32 j = t; j < n_kv; j += WG) {
        row_max = fmaxf(row_max, ordered_score_{T}(k, q, mask_row, j, j * kv_width + kv_off, head_dim, batched, scale));
    }
    row_max = group_max(red, row_max, t);
    if (row_max == NEG_INF) {  // nothing visible: a padding row (the same on every work-item)
        for (u32 d = t; d < head_dim; d += WG) {
            y[q_base + d] = 0.0f;
        }
        return;
    }

    acc_t sum = 0.0f;
    for (u32 c0 = 0u; c0 < n_kv; c0 += WG) {
        u32 j = c0 + t;
        float s = j < n_kv ? ordered_score_{T}(k, q, mask_row, j, j * kv_width + kv_off, head_dim, batched, scale)
                           : NEG_INF;
        chunk[t] = s == NEG_INF ? 0.0f : expf_ggml(s - row_max);
        BARRIER();
        if (t < WG / 16u) {
            float group16[16];
            for (u32 l = 0u; l < 16u; l++) {
                group16[l] = chunk[16u * t + l];
            }
            red[t] = reduce16(group16);
        }
        BARRIER();
        for (u32 g = 0u; g < WG / 16u; g++) {
            sum += (acc_t)red[g];
        }
        BARRIER();
    }
    float inv = (float)((acc_t)1.0f / sum);

    float lane16[256u / WG][16];
    float lane64[256u / WG][64];
    for (u32 i = 0u; i < 256u / WG; i++) {
        for (u32 l = 0u; l < 16u; l++) {
            lane16[i][l] = 0.0f;
        }
        for (u32 l = 0u; l < 64u; l++) {
            lane64[i][l] = 0.0f;
        }
    }
    for (u32 c0 = 0u; c0 < n_kv; c0 += WG) {
        u32 j = c0 + t;
        float s = j < n_kv ? ordered_score_{T}(k, q, mask_row, j, j * kv_width + kv_off, head_dim, batched, scale)
                           : NEG_INF;
        float p = (s == NEG_INF ? 0.0f : expf_ggml(s - row_max)) * inv;
        chunk[t] = {T}_ROUNDS_Q ? round_f16(p) : p;
        BARRIER();
        u32 count = min(WG, n_kv - c0);
        for (u32 i = 0u; i < 256u / WG; i++) {
            u32 d = t + WG * i;
            if (d < head_dim) {
                for (u32 jj = 0u; jj < count; jj++) {
                    u32 cell = c0 + jj;
                    float vv = load_{T}(v, cell * kv_width + kv_off + d);
                    if (batched != 0u) {
                        lane16[i][cell % 16u] = fmaf(vv, chunk[jj], lane16[i][cell % 16u]);
                    } else {
                        lane64[i][cell % 64u] = fmaf(vv, chunk[jj], lane64[i][cell % 64u]);
                    }
                }
            }
        }
        BARRIER();
    }
    for (u32 i = 0u; i < 256u / WG; i++) {
        u32 d = t + WG * i;
        if (d < head_dim) {
            y[q_base + d] = batched != 0u ? reduce16(lane16[i]) : reduce64(lane64[i]);
        }
    }
}
