// The activation functions, with the reference backend's float32 formulas.

float silu(float v) {
    return v / (1.0 + exp(-v));
}

float gelu(float v) {
    const float c = 0.7978845608028654;  // sqrt(2 / pi)
    // tanh saturates long before |u| = 10; clamping keeps exp-based tanh implementations finite
    float u = clamp(c * v * (1.0 + 0.044715 * v * v), -10.0, 10.0);
    return 0.5 * v * (1.0 + tanh(u));
}
