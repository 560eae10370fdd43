// The kernel dialect in OpenCL C 1.2 (pyopencl, PoCL, dpctl's OpenCL devices).
#if defined(cl_khr_fp64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double acc_t;  // sums of a row or a softmax: double where the device has it
#else
typedef float acc_t;
#endif
typedef uchar u8;
typedef char i8;
typedef ushort u16;
typedef uint u32;
typedef int i32;
#define KERNEL __kernel
#define GLOBAL __global
#define PRIVATE
#define DEVICE static inline
#define SHARED __local
#define SHARED_PTR __local  // a pointer parameter into workgroup memory
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define GROUP_ID(d) ((u32)get_group_id(d))
#define LOCAL_ID(d) ((u32)get_local_id(d))
#define F32_BITS(x) as_uint(x)
#define BITS_F32(u) as_float(u)
#define expf exp
#define sqrtf sqrt
#define rintf rint
#define fabsf fabs
#define fmaxf fmax
#define fminf fmin
#define tanhf tanh
#define fmaf fma
#define ldexpf ldexp

// half <-> float on the bits: without cl_khr_fp16, OpenCL 1.2 converts only through memory
// (vload_half, vstore_half_rte)
DEVICE float f16_to_f32(u16 bits) {
    u32 sign = ((u32)bits & 0x8000u) << 16;
    u32 exponent = ((u32)bits >> 10) & 31u;
    u32 mantissa = (u32)bits & 1023u;
    if (exponent == 0u) {  // zero or subnormal: mantissa * 2^-24, exact in float
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return as_float(as_uint(magnitude) | sign);
    }
    if (exponent == 31u) {
        return as_float(sign | 0x7F800000u | (mantissa << 13));
    }
    return as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// round to nearest even; overflow to inf, subnormals kept, NaN stays NaN
DEVICE u16 f32_to_f16(float value) {
    u32 x = as_uint(value);
    u32 sign = (x >> 16) & 0x8000u;
    u32 mag = x & 0x7FFFFFFFu;
    if (mag >= 0x7F800000u) {
        return (u16)(sign | 0x7C00u | (mag > 0x7F800000u ? 0x200u : 0u));
    }
    if (mag >= 0x477FF000u) {  // rounds to 65520 or more
        return (u16)(sign | 0x7C00u);
    }
    if (mag < 0x38800000u) {  // below the smallest normal f16
        if (mag < 0x33000000u) {
            return (u16)sign;
        }
        u32 shift = 126u - (mag >> 23);  // the value in units of 2^-24
        u32 m = (mag & 0x7FFFFFu) | 0x800000u;
        u32 q = m >> shift;
        u32 rest = m & ((1u << shift) - 1u);
        u32 half_way = 1u << (shift - 1u);
        q += (rest > half_way || (rest == half_way && (q & 1u) == 1u)) ? 1u : 0u;
        return (u16)(sign | q);
    }
    u32 r = mag - 0x38000000u;  // exponent 127 -> 15
    u32 q = r >> 13;
    u32 rest = r & 0x1FFFu;
    q += (rest > 0x1000u || (rest == 0x1000u && (q & 1u) == 1u)) ? 1u : 0u;
    return (u16)(sign | q);
}
