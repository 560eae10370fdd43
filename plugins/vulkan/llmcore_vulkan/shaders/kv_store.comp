#version 450
// cache[cells[i], :] = x[i, :], rounded to f16 (two values per uint) for an f16 cache.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Cells { int cells[]; };
layout(binding = 2) buffer Cache { uint cache[]; };
layout(push_constant) uniform Params { uint n; uint width; } p;
#include "common.glsl"

void main() {
    uint idx = linear_group() * 256u + gl_LocalInvocationID.x;
#if defined(CACHE_F16)
    uint per_row = p.width / 2u;
    if (idx >= p.n * per_row) {
        return;
    }
    uint i = idx / per_row;
    uint e = idx % per_row;
    uint src = i * p.width + 2u * e;
    cache[uint(cells[i]) * per_row + e] = f16_bits(x[src]) | (f16_bits(x[src + 1u]) << 16);
#else
    if (idx >= p.n * p.width) {
        return;
    }
    uint i = idx / p.width;
    cache[uint(cells[i]) * p.width + idx % p.width] = floatBitsToUint(x[idx]);
#endif
}
