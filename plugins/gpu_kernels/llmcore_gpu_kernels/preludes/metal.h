// The kernel dialect in Metal Shading Language 2.3 (pyobjc's Metal). Kernel signatures are
// rewritten by the renderer ([[buffer(i)]] arguments, thread positions as parameters).
#include <metal_stdlib>
using namespace metal;
typedef uchar u8;
typedef char i8;
typedef ushort u16;
typedef uint u32;
typedef int i32;
typedef float acc_t;  // Metal has no double
#define KERNEL kernel
#define GLOBAL device
#define PRIVATE thread
#define DEVICE static inline
#define SHARED threadgroup
#define SHARED_PTR threadgroup  // a pointer parameter into workgroup memory
#define BARRIER() threadgroup_barrier(mem_flags::mem_threadgroup)
#define GROUP_ID(d) _group_id[d]
#define LOCAL_ID(d) _local_id[d]
#define F32_BITS(x) as_type<uint>((float)(x))
#define BITS_F32(u) as_type<float>((uint)(u))
#define expf precise::exp
#define sqrtf precise::sqrt
#define rintf rint
#define fabsf fabs
#define fmaxf fmax
#define fminf fmin
#define tanhf precise::tanh
#define fmaf fma
#define ldexpf ldexp

DEVICE float f16_to_f32(u16 bits) {
    return float(as_type<half>(bits));
}

DEVICE u16 f32_to_f16(float value) {
    return as_type<u16>(half(value));  // round to nearest even
}
