#version 450
// Row normalisation, one workgroup per row: rms_norm y = x / sqrt(mean(x^2) + eps), or norm
// y = (x - mean) / sqrt(var + eps). The sums run in column order, in double with ACC_F64, as
// ggml's CPU loops add (devices without shaderFloat64 sum in float): the same bits as llama.cpp.
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
shared ACC red[1];

// the sum of one value per column, added in column order as ggml's CPU loop adds them (in double
// with ACC_F64): the first invocation adds, the others wait
ACC row_sum(uint base, float mean, bool squares) {
    uint t = gl_LocalInvocationID.x;
    if (t == 0u) {
        ACC s = 0.0;
        for (uint j = 0u; j < p.cols; j++) {
            precise float c = a[base + j] - mean;
            precise float sq = c * c;
            s += ACC(squares ? sq : c);
        }
        red[0] = s;
    }
    barrier();
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
        mean = float(row_sum(base, 0.0, false) / ACC(p.cols));  // double division: within an ulp of double
    }
    precise float var = float(row_sum(base, mean, true) / ACC(p.cols)) + p.eps;
    float scale = DIV(1.0, SQRT(var));
    for (uint j = t; j < p.cols; j += 128u) {
        y[base + j] = (a[base + j] - mean) * scale;
    }
}
