// Weight decoding, one 32-value unit at a time, for the type named by TYPE_*. A unit is a block
// of the legacy quants, a 32-value sub-block of the K-quants, or 32 plain values of F32/F16.
//
// load_unit(row_off, u, q, d, m) gives the unit's values as q * d + m, four per vec4: for the
// legacy quants q are the integer quants (exact in float) with the block scale d and minimum m,
// which lets mul_mat take ggml's exact integer block sums; every other type gives final values
// in q with d = 1 and m = 0. Expects the weights bound as `uint w[]`; row_off is in bytes.
// Every loop has a constant trip count so that q stays in registers once unrolled.

#if defined(TYPE_Q4_0) || defined(TYPE_Q4_1) || defined(TYPE_Q8_0)
#define LEGACY_QUANT
#elif defined(TYPE_Q4_K) || defined(TYPE_Q6_K)
#define K_QUANT
#endif

#if defined(TYPE_Q4_0)
const uint BLOCK_BYTES = 18u;
#elif defined(TYPE_Q4_1)
const uint BLOCK_BYTES = 20u;
#elif defined(TYPE_Q8_0)
const uint BLOCK_BYTES = 34u;
#elif defined(TYPE_Q4_K)
const uint BLOCK_BYTES = 144u;
#elif defined(TYPE_Q6_K)
const uint BLOCK_BYTES = 210u;
#endif

const uvec4 BYTE_SHIFTS = uvec4(0u, 8u, 16u, 24u);

#if defined(LEGACY_QUANT)
// Values 4l..4l+3 of a legacy block (ggml's float lane l of the block), as load_unit gives them.
void load_lane(uint row_off, uint u, uint l, out vec4 q, out float d, out float m) {
    uint off = row_off + u * BLOCK_BYTES;
    d = READ_F16(w, off);
    m = 0.0;
#if defined(TYPE_Q8_0)
    ivec4 word = ivec4(int(READ_U32(w, off + 2u + 4u * l)));
    q = vec4((word << ivec4(24, 16, 8, 0)) >> 24);
#else
#if defined(TYPE_Q4_1)
    m = READ_F16(w, off + 2u);
    const float offset = 0.0;
    uint qs = off + 4u;
#else
    const float offset = 8.0;
    uint qs = off + 2u;
#endif
    uvec4 bytes_ = (uvec4(READ_U32(w, qs + 4u * (l & 3u))) >> BYTE_SHIFTS) & 0xFFu;
    q = vec4(l < 4u ? bytes_ & 0xFu : bytes_ >> 4) - offset;
#endif
}
#endif

void load_unit(uint row_off, uint u, out vec4 q[8], out float d, out float m) {
    d = 1.0;
    m = 0.0;
#if defined(TYPE_F32)
    uint base = (row_off >> 2) + u * 32u;
    for (uint k = 0u; k < 8u; k++) {
        q[k] = uintBitsToFloat(uvec4(w[base + 4u * k], w[base + 4u * k + 1u], w[base + 4u * k + 2u], w[base + 4u * k + 3u]));
    }
#elif defined(TYPE_F16)
    uint off = row_off + u * 64u;
    for (uint k = 0u; k < 8u; k++) {
        q[k] = vec4(unpackHalf2x16(READ_U32(w, off + 8u * k)), unpackHalf2x16(READ_U32(w, off + 8u * k + 4u)));
    }
#elif defined(LEGACY_QUANT)
    for (uint l = 0u; l < 8u; l++) {
        load_lane(row_off, u, l, q[l], d, m);
    }
#elif defined(TYPE_Q4_K)
    uint off = row_off + (u >> 3) * BLOCK_BYTES;
    uint j = u & 7u;
    float dall = READ_F16(w, off);
    float dmin = READ_F16(w, off + 2u);
    uint sc, mn;
    if (j < 4u) {
        sc = READ_U8(w, off + 4u + j) & 63u;
        mn = READ_U8(w, off + 8u + j) & 63u;
    } else {
        uint packed = READ_U8(w, off + 8u + j);
        sc = (packed & 0xFu) | ((READ_U8(w, off + j) >> 6) << 4);
        mn = (packed >> 4) | ((READ_U8(w, off + 4u + j) >> 6) << 4);
    }
    float d1 = dall * float(sc);
    float m1 = dmin * float(mn);
    uint qs = off + 16u + 32u * (j >> 1);
    uvec4 shifts = BYTE_SHIFTS + 4u * (j & 1u);
    for (uint k = 0u; k < 8u; k++) {
        q[k] = d1 * vec4((uvec4(READ_U32(w, qs + 4u * k)) >> shifts) & 0xFu) - m1;
    }
#elif defined(TYPE_Q6_K)
    uint off = row_off + (u >> 3) * BLOCK_BYTES;
    uint j = u & 7u;
    uint h = j >> 2;
    uint r = j & 3u;
    float dall = READ_F16(w, off + 208u);
    float d_lo = dall * float(bitfieldExtract(int(READ_U8(w, off + 192u + 2u * j)), 0, 8));
    float d_hi = dall * float(bitfieldExtract(int(READ_U8(w, off + 193u + 2u * j)), 0, 8));
    uint ql = off + 64u * h + 32u * (r & 1u);
    uint qh = off + 128u + 32u * h;
    uvec4 lo_shifts = BYTE_SHIFTS + 4u * (r >> 1);
    uvec4 hi_shifts = BYTE_SHIFTS + 2u * r;
    for (uint k = 0u; k < 8u; k++) {
        uvec4 v = ((uvec4(READ_U32(w, ql + 4u * k)) >> lo_shifts) & 0xFu)
                | (((uvec4(READ_U32(w, qh + 4u * k)) >> hi_shifts) & 3u) << 4);
        q[k] = (k < 4u ? d_lo : d_hi) * (vec4(v) - 32.0);
    }
#endif
}
