// Row normalisation, one workgroup per row: op 0 rms_norm y = x / sqrt(mean(x^2) + eps), op 1 norm
// y = (x - mean) / sqrt(var + eps); the sums in acc_t (double where the device has it).

DEVICE acc_t sum_over_group(SHARED acc_t* red, acc_t mine, u32 t) {
    red[t] = mine;
    BARRIER();
    for (u32 stride = WG / 2u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            red[t] += red[t + stride];
        }
        BARRIER();
    }
    acc_t total = red[0];
    BARRIER();
    return total;
}

KERNEL void norm(GLOBAL const float* a, GLOBAL float* y, u32 rows, u32 cols, u32 op, float eps) {
    SHARED acc_t red[WG];
    u32 row = GROUP_ID(0);
    u32 t = LOCAL_ID(0);
    GLOBAL const float* x = a + row * cols;
    float mean = 0.0f;
    if (op == 1u) {
        acc_t s = 0.0f;
        for (u32 j = t; j < cols; j += WG) {
            s += x[j];
        }
        mean = (float)(sum_over_group(red, s, t) / (acc_t)cols);
    }
    acc_t s2 = 0.0f;
    for (u32 j = t; j < cols; j += WG) {
        float c = x[j] - mean;
        s2 += (acc_t)(c * c);
    }
    float var = (float)(sum_over_group(red, s2, t) / (acc_t)cols);
    float scale = 1.0f / sqrtf(var + eps);
    for (u32 j = t; j < cols; j += WG) {
        y[row * cols + j] = (x[j] - mean) * scale;
    }
}
