#version 450
// Row normalisation, one workgroup per row: rms_norm y = x / sqrt(mean(x^2) + eps), or norm
// y = (x - mean) / sqrt(var + eps). Sums are tree reductions (the reference sums in double).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 128) in;
layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Params { uint n; uint cols; uint op; float eps; } p;
#include "common.glsl"

const uint OP_NORM = 1u;
shared float red[128];

float row_sum(float v) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint stride = 64u; stride > 0u; stride >>= 1) {
        if (t < stride) {
            red[t] += red[t + stride];
        }
        barrier();
    }
    float total = red[0];
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
        float s = 0.0;
        for (uint j = t; j < p.cols; j += 128u) {
            s += a[base + j];
        }
        mean = row_sum(s) / float(p.cols);
    }
    float s2 = 0.0;
    for (uint j = t; j < p.cols; j += 128u) {
        float c = a[base + j] - mean;
        s2 += c * c;
    }
    float scale = 1.0 / sqrt(row_sum(s2) / float(p.cols) + p.eps);
    for (uint j = t; j < p.cols; j += 128u) {
        y[base + j] = (a[base + j] - mean) * scale;
    }
}
