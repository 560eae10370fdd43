#version 450
// Row normalisation, one workgroup per row: rms_norm y = x / sqrt(mean(x^2) + eps), or norm
// y = (x - mean) / sqrt(var + eps). Sums are tree reductions, in double with ACC_F64 (as ggml and
// the reference sum; devices without shaderFloat64 sum in float).
#extension GL_GOOGLE_include_directive : require
#if defined(ACC_F64)
#define ACC double
#else
#define ACC float
#endif
layout(local_size_x = 128) in;
layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint n; uint cols; uint op; float eps; } p;
#include "common.glsl"

const uint OP_NORM = 1u;
shared ACC red[128];

ACC row_sum(ACC v) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint stride = 64u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            red[t] += red[t + stride];
        }
        barrier();
    }
    ACC total = red[0];
    barrier();
    return total;
}

void main() {
    uint row = linear_group();
    if (row >= p.n) {
        return;
    }
    uint base = row * p.cols;
    uint t = gl_LocalInvocationID.x;
    float mean = 0.0;
    if (p.op == OP_NORM) {
        ACC s = 0.0;
        for (uint j = t; j < p.cols; j += 128u) {
            s += ACC(a[base + j]);
        }
        mean = float(row_sum(s) / ACC(p.cols));
    }
    ACC s2 = 0.0;
    for (uint j = t; j < p.cols; j += 128u) {
        float c = a[base + j] - mean;
        s2 += ACC(c * c);
    }
    float scale = 1.0 / sqrt(float(row_sum(s2) / ACC(p.cols)) + p.eps);
    for (uint j = t; j < p.cols; j += 128u) {
        y[base + j] = (a[base + j] - mean) * scale;
    }
}
