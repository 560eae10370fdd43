// The activation functions, with the reference backend's float32 formulas. Needs common.glsl.

float silu(float v) {
    return v / (1.0 + exp(-v));
}

// ggml's GELU as its CPU backend computes it: the tanh approximation read from a table indexed
// by the f16 value of x and holding f16 results; x >= 10 passes through, x <= -10 gives 0.
float gelu(float v) {
    if (v >= 10.0) {
        return v;
    }
    if (v <= -10.0) {
        return 0.0;
    }
    const float c = 0.7978845608028654;  // sqrt(2 / pi)
    float h = round_f16(v);
    return round_f16(0.5 * h * (1.0 + tanh(c * h * (1.0 + 0.044715 * h * h))));
}
