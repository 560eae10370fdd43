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

// for T in f16 f32
// softmax(q k^T * scale + mask) v over the first n_kv cells (step[0]), one workgroup per (token,
// query head); query head h reads KV head h / group. q is rounded to f16 for an f16 cache; with
// softcap > 0 the products become softcap * tanh(q.k / softcap). The cells are taken 64 at a time
// with an online softmax (flash attention's): each work-item scores one cell of the chunk, then
// owns head dims t, t + 64, ... of the output, rescaled whenever the running maximum grows.
KERNEL void attention_{T}(GLOBAL const float* q, GLOBAL const u8* k, GLOBAL const u8* v, GLOBAL const float* mask,
                          GLOBAL const u32* step, GLOBAL float* y, u32 n_head, u32 head_dim, u32 group,
                          u32 kv_width, u32 mask_stride, float scale, float softcap) {
    SHARED float qs[256];
    SHARED float chunk[WG];
    u32 token = GROUP_ID(0) / n_head;
    u32 head = GROUP_ID(0) % n_head;
    u32 t = LOCAL_ID(0);
    u32 n_kv = step[0];
    u32 kv_off = (head / group) * head_dim;
    u32 q_base = (token * n_head + head) * head_dim;
    for (u32 d = t; d < head_dim; d += WG) {
        qs[d] = {T}_ROUNDS_Q ? round_f16(q[q_base + d]) : q[q_base + d];
    }
    BARRIER();
    float run_max = NEG_INF;
    float run_sum = 0.0f;
    float acc[256u / WG];
    for (u32 i = 0u; i < 256u / WG; i++) {
        acc[i] = 0.0f;
    }
    for (u32 c0 = 0u; c0 < n_kv; c0 += WG) {
        u32 j = c0 + t;
        float s = NEG_INF;
        if (j < n_kv) {
            float mk = mask[token * mask_stride + j];
            if (mk != NEG_INF) {
                float dot = 0.0f;
                for (u32 d = 0u; d < head_dim; d++) {
                    dot += load_{T}(k, j * kv_width + kv_off + d) * qs[d];
                }
                if (softcap > 0.0f) {
                    dot = softcap * tanhf(dot * (1.0f / softcap));
                }
                s = dot * scale + mk;
            }
        }
        chunk[t] = s;
        BARRIER();
        u32 count = min(WG, n_kv - c0);
        float chunk_max = NEG_INF;
        for (u32 jj = 0u; jj < count; jj++) {
            chunk_max = fmaxf(chunk_max, chunk[jj]);
        }
        float new_max = fmaxf(run_max, chunk_max);
        BARRIER();
        if (new_max != NEG_INF) {  // the same on every work-item: nothing visible yet skips the chunk
            float correction = run_max == NEG_INF ? 0.0f : expf(run_max - new_max);
            chunk[t] = s == NEG_INF ? 0.0f : expf(s - new_max);
            BARRIER();
            float chunk_sum = 0.0f;
            for (u32 jj = 0u; jj < count; jj++) {
                chunk_sum += chunk[jj];
            }
            run_sum = run_sum * correction + chunk_sum;
            for (u32 i = 0u; i < 256u / WG; i++) {
                u32 d = t + WG * i;
                if (d < head_dim) {
                    float a = acc[i] * correction;
                    for (u32 jj = 0u; jj < count; jj++) {
                        a += chunk[jj] * load_{T}(v, (c0 + jj) * kv_width + kv_off + d);
                    }
                    acc[i] = a;
                }
            }
            run_max = new_max;
            BARRIER();
        }
    }
    for (u32 i = 0u; i < 256u / WG; i++) {
        u32 d = t + WG * i;
        if (d < head_dim) {
            y[q_base + d] = run_sum > 0.0f ? acc[i] / run_sum : 0.0f;
        }
    }
}
