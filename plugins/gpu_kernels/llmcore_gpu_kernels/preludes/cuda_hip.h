// What the kernel dialect spells alike in CUDA C++ (NVRTC) and HIP C++ (hiprtc), put before the
// part of each that differs (cuda.h, hip.h).
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef double acc_t;
#define KERNEL extern "C" __global__
#define GLOBAL
#define PRIVATE
#define SHARED __shared__
#define SHARED_PTR  // a pointer parameter into workgroup memory (generic in CUDA and HIP)
#define BARRIER() __syncthreads()
