// Element-wise ops, one work-item per value.

// y = a + b (op 0), a * b (op 1) or a / b (op 2): b repeats over a's leading axes (a bias, a norm weight, or a's
// own shape), or, with row_len > 0, holds one value per row of a's row_len values
KERNEL void binary(GLOBAL const float* a, GLOBAL const float* b, GLOBAL float* y, u32 total, u32 nb, u32 op,
                   u32 row_len) {
    u32 i = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (i >= total) {
        return;
    }
    float bv = b[row_len > 0u ? i / row_len : i % nb];
    y[i] = op == 0u ? a[i] + bv : op == 1u ? a[i] * bv : a[i] / bv;
}

// op 0: a * factor, 1: silu, 2: gelu, 3: tanh, 4: clamp to [low, high]
KERNEL void unary(GLOBAL const float* a, GLOBAL float* y, u32 total, u32 op, float factor, float low, float high) {
    u32 i = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (i >= total) {
        return;
    }
    float x = a[i];
    float r;
    if (op == 0u) {
        r = x * factor;
    } else if (op == 1u) {
        r = silu(x);
    } else if (op == 2u) {
        r = gelu(x);
    } else if (op == 3u) {
        r = tanhf(x);
    } else {
        r = fminf(fmaxf(x, low), high);
    }
    y[i] = r;
}

// op 0: silu(gate) * up (SwiGLU), 1: gelu(gate) * up (GeGLU)
KERNEL void glu(GLOBAL const float* gate, GLOBAL const float* up, GLOBAL float* y, u32 total, u32 op) {
    u32 i = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (i >= total) {
        return;
    }
    float g = gate[i];
    y[i] = (op == 0u ? silu(g) : gelu(g)) * up[i];
}
