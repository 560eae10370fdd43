// Row normalisation, one workgroup per row: op 0 rms_norm y = x / sqrt(mean(x^2) + eps), op 1 norm
// y = (x - mean) / sqrt(var + eps). The sums run in column order in acc_t (double where the device
// has it), as ggml's CPU loops add: the first work-item adds, the others wait.

DEVICE acc_t column_sum(SHARED_PTR acc_t* total, GLOBAL const float* x, u32 cols, float mean, u32 squares, u32 t) {
    if (t == 0u) {
        acc_t s = 0.0f;
        for (u32 j = 0u; j < cols; j++) {
            float c = x[j] - mean;
            s += (acc_t)(squares != 0u ? c * c : c);
        }
        total[0] = s;
    }
    BARRIER();
    acc_t s = total[0];
    BARRIER();
    return s;
}

KERNEL void row_norm(GLOBAL const float* a, GLOBAL float* y, u32 rows, u32 cols, u32 op, float eps) {
    SHARED acc_t total[1];
    u32 row = GROUP_ID(0);
    u32 t = LOCAL_ID(0);
    GLOBAL const float* x = a + row * cols;
    float mean = 0.0f;
    if (op == 1u) {
        mean = (float)(column_sum(total, x, cols, 0.0f, 0u, t) / (acc_t)cols);
    }
    float var = (float)(column_sum(total, x, cols, mean, 1u, t) / (acc_t)cols);
    float scale = 1.0f / sqrtf(var + eps);
    for (u32 j = t; j < cols; j += WG) {
        y[row * cols + j] = (x[j] - mean) * scale;
    }
}
