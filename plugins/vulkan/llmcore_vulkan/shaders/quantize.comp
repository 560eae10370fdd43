#version 450
// Activations rounded the way ggml rounds them before meeting a weight (its vec_dot_type):
//   Q8_1 (for Q4_0/Q4_1/Q8_0): per 32 values q = rint(x * 127 / amax), d = f16(amax / 127),
//                              s = f16(d * sum q); one invocation per block.
//   Q8_K (for the K-quants):   per 256 values q = min(rint(x * -127 / peak), 127), d = 1 / iscale
//                              in f32, peak being the value of largest magnitude.
//   F16 (for F16 weights):     q = f16(x).
// Output: q as float [n, cols], then d at d_off and s at s_off (in floats).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Q { float xq[]; };
layout(push_constant) uniform Params { uint n_blocks; uint d_off; uint s_off; } p;
#include "common.glsl"

void main() {
    uint b = linear_group() * 64u + gl_LocalInvocationID.x;
    if (b >= p.n_blocks) {
        return;
    }
#if defined(MODE_Q8_1)
    uint base = b * 32u;
    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) {
        amax = max(amax, abs(x[base + j]));
    }
    float inv = amax != 0.0 ? DIV(127.0, amax) : 0.0;
    float sum = 0.0;
    for (uint j = 0u; j < 32u; j++) {
        float q = roundEven(x[base + j] * inv);
        xq[base + j] = q;
        sum += q;
    }
    float d = DIV(amax, 127.0);
    xq[p.d_off + b] = round_f16(d);
    xq[p.s_off + b] = round_f16(d * sum);
#elif defined(MODE_Q8_K)
    uint base = b * 256u;
    float peak = 0.0;
    float amax = 0.0;
    for (uint j = 0u; j < 256u; j++) {
        float v = x[base + j];
        if (abs(v) > amax) {
            amax = abs(v);
            peak = v;
        }
    }
    float iscale = peak != 0.0 ? DIV(-127.0, peak) : 0.0;
    for (uint j = 0u; j < 256u; j++) {
        xq[base + j] = min(roundEven(x[base + j] * iscale), 127.0);
    }
    xq[p.d_off + b] = iscale != 0.0 ? DIV(1.0, iscale) : 0.0;
#elif defined(MODE_F16)
    xq[b] = round_f16(x[b]);
#endif
}
