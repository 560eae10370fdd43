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

// half <-> float without cl_khr_fp16: vload_half / vstore_half_rte are core OpenCL 1.2
DEVICE float f16_to_f32(u16 bits) {
    return vload_half(0, (const half*)&bits);
}

DEVICE u16 f32_to_f16(float value) {
    u16 bits;
    vstore_half_rte(value, 0, (half*)&bits);
    return bits;
}
