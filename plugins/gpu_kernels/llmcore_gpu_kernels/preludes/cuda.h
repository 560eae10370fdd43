// The kernel dialect in CUDA C++ as NVRTC compiles it (CuPy RawModule): no headers needed.
#define DEVICE static __device__ __forceinline__
#define GROUP_ID(d) ((d) == 0 ? blockIdx.x : blockIdx.y)
#define LOCAL_ID(d) threadIdx.x
#define F32_BITS(x) __float_as_uint(x)
#define BITS_F32(u) __uint_as_float(u)

// the PTX conversions: round to nearest even, as ggml's f16 rounding
DEVICE float f16_to_f32(u16 bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
}

DEVICE u16 f32_to_f16(float value) {
    u16 bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
}
