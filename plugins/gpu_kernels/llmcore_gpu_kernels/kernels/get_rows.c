// out[i, :] = table[ids[i], :] as float32, bit for bit as ggml decodes it.

DEVICE float value_f32(GLOBAL const u8* row, u32 j) {
    return ((GLOBAL const float*)row)[j];
}

DEVICE float value_f16(GLOBAL const u8* row, u32 j) {
    return f16_to_f32(((GLOBAL const u16*)row)[j]);
}

DEVICE float value_bf16(GLOBAL const u8* row, u32 j) {
    return BITS_F32((u32)((GLOBAL const u16*)row)[j] << 16);
}

// for T in f32 f16 bf16
// plain tables, one work-item per value (any width); f32 tables may be activations
KERNEL void get_rows_{T}(GLOBAL const u8* w, GLOBAL const i32* ids, GLOBAL float* y, u32 n, u32 cols, u32 row_bytes) {
    u32 idx = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (idx >= n * cols) {
        return;
    }
    u32 i = idx / cols;
    y[idx] = value_{T}(w + (u32)ids[i] * row_bytes, idx % cols);
}

// for T in q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k
// block tables, one work-item per 32-value unit
KERNEL void get_rows_{T}(GLOBAL const u8* w, GLOBAL const i32* ids, GLOBAL float* y, u32 n, u32 cols, u32 row_bytes) {
    u32 units = cols / 32u;
    u32 idx = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (idx >= n * units) {
        return;
    }
    u32 i = idx / units;
    u32 u = idx % units;
    float q[32];
    float d, m;
    unit_{T}(w, (u32)ids[i] * row_bytes, u, q, &d, &m);
    for (u32 k = 0u; k < 32u; k++) {
        y[i * cols + 32u * u + k] = q[k] * d + m;
    }
}
