// Rotary embedding of x[n, heads, dim]: pair i < half_rot of each head turns by the angle whose cos
// and sin the host wrote for the token's position (the plugin API's rope_cos_sin: ggml's angles
// with the C library's cosf/sinf, times the magnitude scale), fused as ggml's CPU build fuses them.
// Normal mode pairs (2i, 2i+1), neox (i, i + half_rot); dims past n_rot pass through.
KERNEL void rope(GLOBAL const float* x, GLOBAL const float* table, GLOBAL float* y, u32 n, u32 heads, u32 dim,
                 u32 half_rot, u32 neox) {
    u32 pairs = dim / 2u;
    u32 idx = GROUP_ID(0) * WG + LOCAL_ID(0);
    if (idx >= n * heads * pairs) {
        return;
    }
    u32 i = idx % pairs;
    u32 token = idx / (pairs * heads);
    u32 base = (idx / pairs) * dim;
    if (i >= half_rot) {
        y[base + 2u * i] = x[base + 2u * i];
        y[base + 2u * i + 1u] = x[base + 2u * i + 1u];
        return;
    }
    float c = table[token * half_rot + i];
    float s = table[(n + token) * half_rot + i];
    u32 i0 = neox != 0u ? i : 2u * i;
    u32 i1 = neox != 0u ? i + half_rot : 2u * i + 1u;
    float a = x[base + i0];
    float b = x[base + i1];
    y[base + i0] = fmaf(a, c, -(b * s));
    y[base + i1] = fmaf(a, s, b * c);
}
