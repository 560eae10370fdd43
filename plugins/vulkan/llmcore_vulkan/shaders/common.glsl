// Helpers every shader shares: linear workgroup ids over 2-D dispatches, byte access to raw
// GGUF blocks held in uint arrays, and f32 <-> f16 conversion that rounds to nearest even on
// every device (packHalf2x16 leaves the rounding mode to the implementation).

uint linear_group() {
    return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
}

// Quantized blocks are 2-byte aligned (block sizes 18, 20, 34, 144, 210...), never 4.
#define READ_U8(buf, off) ((buf[(off) >> 2] >> (((off) & 3u) * 8u)) & 0xFFu)
#define READ_U16(buf, off) ((buf[(off) >> 2] >> (((off) & 2u) * 8u)) & 0xFFFFu)
#define READ_U32(buf, off) ((((off) & 2u) == 0u) ? buf[(off) >> 2] \
    : ((buf[(off) >> 2] >> 16) | (buf[((off) >> 2) + 1u] << 16)))
#define READ_F16(buf, off) unpackHalf2x16(READ_U16(buf, off)).x

// f32 -> f16 bits, round to nearest even, overflow to inf, subnormals kept.
uint f16_bits(float value) {
    uint x = floatBitsToUint(value);
    uint sign = (x >> 16) & 0x8000u;
    uint mag = x & 0x7FFFFFFFu;
    if (mag >= 0x7F800000u) {  // inf or nan
        return sign | 0x7C00u | (mag > 0x7F800000u ? 0x200u : 0u);
    }
    if (mag >= 0x477FF000u) {  // rounds to >= 65520: inf
        return sign | 0x7C00u;
    }
    if (mag < 0x38800000u) {  // below the smallest normal f16: a subnormal or zero
        if (mag < 0x33000000u) {
            return sign;
        }
        uint e = mag >> 23;
        uint m = (mag & 0x7FFFFFu) | 0x800000u;
        uint shift = 126u - e;  // the value in units of 2^-24, the f16 subnormal step
        uint q = m >> shift;
        uint rem = m & ((1u << shift) - 1u);
        uint half_ = 1u << (shift - 1u);
        q += uint(rem > half_ || (rem == half_ && (q & 1u) == 1u));
        return sign | q;
    }
    uint r = mag - 0x38000000u;  // rebias exponent 127 -> 15
    uint q = r >> 13;
    uint rem = r & 0x1FFFu;
    q += uint(rem > 0x1000u || (rem == 0x1000u && (q & 1u) == 1u));
    return sign | q;
}

float round_f16(float value) {
    return unpackHalf2x16(f16_bits(value)).x;
}

// fma with one rounding. Vulkan lets fma() round twice (lavapipe does: a multiply, then an add),
// and llama.cpp's CPU build fuses its multiply-adds, so where the rounding shows (rope, expf, the
// matmul's block sums) shaders built with EXACT_FMA (devices with shaderFloat64) compute it in
// double: the product is exact there, the sum's error is recovered exactly (TwoSum), and the sum
// is rounded to odd before the final rounding to float, which makes that rounding the one a fused
// operation would do (53 >= 2 * 24 + 2 bits).
#if defined(EXACT_FMA)
float fma_exact(float a, float b, float c) {
    precise double p = double(a) * double(b);
    precise double s = p + double(c);
    precise double bv = s - p;
    precise double e = (p - (s - bv)) + (double(c) - bv);
    if (e != 0.0) {
        uvec2 bits = unpackDouble2x32(s);
        if ((bits.x & 1u) == 0u) {  // s is even: step to the odd neighbour on e's side
            if ((e > 0.0) == (s > 0.0)) {
                bits.x += 1u;
                bits.y += bits.x == 0u ? 1u : 0u;
            } else {
                bits.y -= bits.x == 0u ? 1u : 0u;
                bits.x -= 1u;
            }
            s = packDouble2x32(bits);
        }
    }
    return float(s);
}
#define FMA(a, b, c) fma_exact(a, b, c)

// a / b rounded once, as IEEE division: Vulkan allows 2.5 ULP and Mesa may divide through a
// reciprocal. The double quotient is within an ulp; its float neighbours are compared by their
// exact remainders (a - q * b is exact in double for q near a / b), ties to the even one.
float div_exact(float a, float b) {
    float q = float(double(a) / double(b));
    if (isinf(q) || isnan(q) || q == 0.0) {
        return q;
    }
    float best = q;
    precise double best_r = abs(double(a) - double(q) * double(b));
    for (int k = -1; k <= 1; k += 2) {
        float c = uintBitsToFloat(uint(int(floatBitsToUint(q)) + k));
        precise double r = abs(double(a) - double(c) * double(b));
        if (r < best_r || (r == best_r && (floatBitsToUint(c) & 1u) == 0u)) {
            best = c;
            best_r = r;
        }
    }
    return best;
}

// sqrt rounded once: the double square root rounded to float is the correctly rounded one
float sqrt_exact(float x) {
    return float(sqrt(double(x)));
}
#define DIV(a, b) div_exact(a, b)
#define SQRT(x) sqrt_exact(x)
#else
#define FMA(a, b, c) fma(a, b, c)
#define DIV(a, b) ((a) / (b))
#define SQRT(x) sqrt(x)
#endif
