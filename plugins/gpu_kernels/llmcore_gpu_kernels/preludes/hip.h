// The kernel dialect in HIP C++ as hiprtc compiles it (CuPy's ROCm build), llama.cpp's
// vendors/hip.h idea: CUDA's spelling, clang's AMDGPU builtins where the two differ.
#define DEVICE static __device__ inline
#define GROUP_ID(d) ((d) == 0 ? __builtin_amdgcn_workgroup_id_x() : __builtin_amdgcn_workgroup_id_y())
#define LOCAL_ID(d) __builtin_amdgcn_workitem_id_x()
#define F32_BITS(x) __builtin_bit_cast(u32, (float)(x))
#define BITS_F32(u) __builtin_bit_cast(float, (u32)(u))

DEVICE float f16_to_f32(u16 bits) {
    return (float)__builtin_bit_cast(_Float16, bits);
}

DEVICE u16 f32_to_f16(float value) {
    return __builtin_bit_cast(u16, (_Float16)value);  // round to nearest even
}
