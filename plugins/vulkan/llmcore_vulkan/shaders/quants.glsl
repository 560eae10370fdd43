// Weight decoding, one 32-value unit at a time, for the type named by TYPE_*. A unit is a block
// of the legacy quants, a 32-value sub-block of the K-quants, or 32 plain values of F32/F16.
//
// load_unit(row_off, u, cols, q, d, m) gives the unit's values as q * d + m: for the legacy
// quants q are the integer quants (exact in float) with the block scale d and minimum m, which
// lets mul_mat take ggml's exact integer block sums; every other type gives final values in q
// with d = 1 and m = 0. Expects the weights bound as `uint w[]` and row_off in bytes.

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

void load_unit(uint row_off, uint u, uint cols, out float q[32], out float d, out float m) {
    d = 1.0;
    m = 0.0;
#if defined(TYPE_F32)
    uint base = (row_off >> 2) + u * 32u;
    for (uint j = 0u; j < 32u; j++) {
        q[j] = (u * 32u + j < cols) ? uintBitsToFloat(w[base + j]) : 0.0;
    }
#elif defined(TYPE_F16)
    uint off = row_off + u * 64u;
    if (u * 32u + 32u <= cols) {
        for (uint k = 0u; k < 16u; k++) {
            vec2 pair = unpackHalf2x16(READ_U32(w, off + 4u * k));
            q[2u * k] = pair.x;
            q[2u * k + 1u] = pair.y;
        }
    } else {
        for (uint j = 0u; j < 32u; j++) {
            q[j] = (u * 32u + j < cols) ? READ_F16(w, off + 2u * j) : 0.0;
        }
    }
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1)
    uint off = row_off + u * BLOCK_BYTES;
    d = READ_F16(w, off);
#if defined(TYPE_Q4_1)
    m = READ_F16(w, off + 2u);
    const float offset = 0.0;
    uint qs = off + 4u;
#else
    const float offset = 8.0;
    uint qs = off + 2u;
#endif
    for (uint k = 0u; k < 4u; k++) {
        uint word = READ_U32(w, qs + 4u * k);
        for (uint i = 0u; i < 4u; i++) {
            uint byte_ = (word >> (8u * i)) & 0xFFu;
            q[4u * k + i] = float(byte_ & 0xFu) - offset;
            q[4u * k + i + 16u] = float(byte_ >> 4) - offset;
        }
    }
#elif defined(TYPE_Q8_0)
    uint off = row_off + u * BLOCK_BYTES;
    d = READ_F16(w, off);
    for (uint k = 0u; k < 8u; k++) {
        int word = int(READ_U32(w, off + 2u + 4u * k));
        for (uint i = 0u; i < 4u; i++) {
            q[4u * k + i] = float(bitfieldExtract(word, int(8u * i), 8));
        }
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
    uint shift = 4u * (j & 1u);
    for (uint k = 0u; k < 8u; k++) {
        uint word = READ_U32(w, qs + 4u * k);
        for (uint i = 0u; i < 4u; i++) {
            q[4u * k + i] = d1 * float((word >> (8u * i + shift)) & 0xFu) - m1;
        }
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
    uint ql_shift = 4u * (r >> 1);
    uint qh = off + 128u + 32u * h;
    for (uint k = 0u; k < 8u; k++) {
        uint lo = READ_U32(w, ql + 4u * k);
        uint hi = READ_U32(w, qh + 4u * k);
        for (uint i = 0u; i < 4u; i++) {
            uint v = ((lo >> (8u * i + ql_shift)) & 0xFu) | (((hi >> (8u * i + 2u * r)) & 3u) << 4);
            uint l = 4u * k + i;
            q[l] = (l < 16u ? d_lo : d_hi) * float(int(v) - 32);
        }
    }
#endif
}
