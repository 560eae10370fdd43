// The activation functions, with the reference backend's float32 formulas. Needs common.glsl.

// ggml_v_expf, the AVX-512 form llama.cpp's CPU build uses (softmax, silu), operation for operation:
// exp(x) = 2^n * p(b) with n = round(x / ln 2) and b = x - n ln 2 in two parts; `precise` keeps each
// multiply and add rounded as written, fma() fused.
float expf_ggml(float x) {
    const float r = uintBitsToFloat(0x4b400000u);  // 0x1.8p23
    precise float z = FMA(x, uintBitsToFloat(0x3fb8aa3bu), r);
    precise float n = z - r;
    precise float b = FMA(-n, uintBitsToFloat(0x35bfbe8eu), FMA(-n, uintBitsToFloat(0x3f317200u), x));
    precise float u = b * b;
    precise float j = FMA(FMA(FMA(uintBitsToFloat(0x3c072010u), b, uintBitsToFloat(0x3d2b9f17u)), u,
                              FMA(uintBitsToFloat(0x3e2aaf33u), b, uintBitsToFloat(0x3efffedbu))),
                          u, FMA(uintBitsToFloat(0x3f7ffff6u), b, 1.0));
    if (abs(n) > 192.0) {
        return n <= 0.0 ? 0.0 : uintBitsToFloat(0x7f800000u);
    }
    return ldexp(j, int(n));
}

// ggml's silu: x / (1 + exp(-x)) with its expf
float silu(float v) {
    precise float d = 1.0 + expf_ggml(-v);
    return DIV(v, d);
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
