// Activations rounded the way ggml rounds them before they meet a weight (its vec_dot_type), and
// the products y[t, r] = dot(w[r, :], x[t, :]).

// f16 or bf16 (op 0, 1): each value rounded
KERNEL void prepare_float(GLOBAL const float* x, GLOBAL float* xq, u32 total, u32 op) {
    u32 i = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (i >= total) {
        return;
    }
    xq[i] = op == 0u ? round_f16(x[i]) : round_bf16(x[i]);
}

// q8_1, per block of 32 (one work-item each): q = rint(x * 127 / amax), d = f16(amax / 127),
// s = f16(d * sum q), d before its own rounding; quants as floats, then d at d_off, s at s_off
KERNEL void prepare_q8_1(GLOBAL const float* x, GLOBAL float* xq, u32 blocks, u32 d_off, u32 s_off) {
    u32 b = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (b >= blocks) {
        return;
    }
    GLOBAL const float* v = x + 32u * b;
    float amax = 0.0f;
    for (u32 j = 0u; j < 32u; j++) {
        amax = fmaxf(amax, fabsf(v[j]));
    }
    float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
    float sum = 0.0f;
    for (u32 j = 0u; j < 32u; j++) {
        float q = rintf(v[j] * inv);
        xq[32u * b + j] = q;
        sum += q;
    }
    float d = amax / 127.0f;
    xq[d_off + b] = round_f16(d);
    xq[s_off + b] = round_f16(d * sum);
}

// q8_K, per block of 256: q = min(rint(x * -127 / peak), 127) with peak the value of largest
// magnitude, d = 1 / iscale in f32 at d_off
KERNEL void prepare_q8_k(GLOBAL const float* x, GLOBAL float* xq, u32 blocks, u32 d_off) {
    u32 b = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (b >= blocks) {
        return;
    }
    GLOBAL const float* v = x + 256u * b;
    float amax = 0.0f;
    float peak = 0.0f;
    for (u32 j = 0u; j < 256u; j++) {
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            peak = v[j];
        }
    }
    float iscale = peak != 0.0f ? -127.0f / peak : 0.0f;
    for (u32 j = 0u; j < 256u; j++) {
        xq[256u * b + j] = fminf(rintf(v[j] * iscale), 127.0f);
    }
    xq[d_off + b] = iscale != 0.0f ? 1.0f / iscale : 0.0f;
}

// for T in f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k
// A workgroup takes WG / lanes weight rows and `tile` (<= MAX_TILE) tokens: `lanes` work-items per
// row stride over its 32-value units, each unit decoded once for every token of the tile (tile 1:
// the matrix-vector product of a decoded token), and the lanes' sums meet in a tree. x is what
// prepare_* made of the activations for the weight's type; legacy blocks add
// d_w * d_x * (exact integer sum) + m_w * s_x per block, as ggml's vec_dot_q4_1_q8_1.
KERNEL void mul_mat_{T}(GLOBAL const u8* w, GLOBAL const float* x, GLOBAL float* y, u32 rows, u32 cols, u32 n,
                        u32 row_bytes, u32 d_off, u32 s_off, u32 lanes, u32 tile) {
    SHARED float partial[WG * MAX_TILE];
    u32 item = LOCAL_ID(0);
    u32 lane = item % lanes;
    u32 row = GROUP_ID(0) * (WG / lanes) + item / lanes;
    u32 t0 = GROUP_ID(1) * tile;
    u32 units = cols / 32u;
    float acc[MAX_TILE];
    for (u32 c = 0u; c < MAX_TILE; c++) {
        acc[c] = 0.0f;
    }
    if (row < rows) {
        for (u32 u = lane; u < units; u += lanes) {
            float q[32];
            float d, m;
            unit_{T}(w, row * row_bytes, u, q, &d, &m);
            for (u32 c = 0u; c < tile; c++) {
                u32 t = min(t0 + c, n - 1u);  // a partial tile repeats its last token, never stored
                GLOBAL const float* xv = x + t * cols + 32u * u;
                float dot = 0.0f;
                for (u32 k = 0u; k < 32u; k++) {
                    dot += q[k] * xv[k];
                }
                if (KIND_{T} == KIND_LEGACY) {
                    u32 blk = t * units + u;
                    acc[c] += dot * (d * x[d_off + blk]) + m * x[s_off + blk];
                } else if (KIND_{T} == KIND_K) {
                    acc[c] += dot * x[d_off + t * (cols / 256u) + u / 8u];
                } else {
                    acc[c] += dot;
                }
            }
        }
    }
    for (u32 c = 0u; c < MAX_TILE; c++) {
        partial[item * MAX_TILE + c] = acc[c];
    }
    BARRIER();
    for (u32 stride = lanes / 2u; stride > 0u; stride >>= 1) {
        if (lane < stride) {
            for (u32 c = 0u; c < MAX_TILE; c++) {
                partial[item * MAX_TILE + c] += partial[(item + stride) * MAX_TILE + c];
            }
        }
        BARRIER();
    }
    if (lane == 0u && row < rows) {
        for (u32 c = 0u; c < tile; c++) {
            if (t0 + c < n) {
                y[(t0 + c) * rows + row] = partial[item * MAX_TILE + c];
            }
        }
    }
}

// -- llama.cpp's CPU order, for CPU devices ----------------------------------------------------------

// for T in q4_0 q4_1 q5_0 q5_1 q8_0
// The same product for a legacy block type in llama.cpp's order on x86 (ggml's vec_dot and
// tinyBLAS), one work-item per weight row: eight float lanes, lane l taking values 4l..4l+3 of each
// block, fused into its running sum as (d_w * d_x) * exact integer sum; the lanes' hsum
// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), then the minima's sum added block after block.
KERNEL void mul_mat_ordered_{T}(GLOBAL const u8* w, GLOBAL const float* x, GLOBAL float* y, u32 rows, u32 cols,
                                u32 n, u32 row_bytes, u32 d_off, u32 s_off, u32 tile) {
    u32 row = GROUP_ID(0) * WG + LOCAL_ID(0);
    u32 t0 = GROUP_ID(1) * tile;
    u32 units = cols / 32u;
    if (row >= rows) {
        return;
    }
    float lanes8[8u * MAX_TILE];
    float minima[MAX_TILE];
    for (u32 i = 0u; i < 8u * MAX_TILE; i++) {
        lanes8[i] = 0.0f;
    }
    for (u32 c = 0u; c < MAX_TILE; c++) {
        minima[c] = 0.0f;
    }
    for (u32 u = 0u; u < units; u++) {
        float q[32];
        float d, m;
        unit_{T}(w, row * row_bytes, u, q, &d, &m);
        for (u32 c = 0u; c < tile; c++) {
            u32 t = min(t0 + c, n - 1u);
            GLOBAL const float* xv = x + t * cols + 32u * u;
            u32 blk = t * units + u;
            float scale = d * x[d_off + blk];
            for (u32 l = 0u; l < 8u; l++) {
                float isum = 0.0f;
                for (u32 i = 4u * l; i < 4u * l + 4u; i++) {
                    isum += q[i] * xv[i];  // integers: exact
                }
                lanes8[8u * c + l] = fmaf(scale, isum, lanes8[8u * c + l]);
            }
            minima[c] += m * x[s_off + blk];
        }
    }
    for (u32 c = 0u; c < tile; c++) {
        if (t0 + c < n) {
            PRIVATE float* a = lanes8 + 8u * c;
            y[(t0 + c) * rows + row] = (((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))) + minima[c];
        }
    }
}
