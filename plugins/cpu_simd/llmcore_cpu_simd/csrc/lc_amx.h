/* AMX-INT8 tiles for the legacy types' prompt GEMM (amx.c), only where the OS grants the tile state.
 *
 * Linux hands a process AMX's 8 KiB of tile registers only after arch_prctl(ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA) succeeds; a tile instruction before that (or where the kernel or a hypervisor
 * left the state out of XCR0, as on some Intel VMs whose CPUID still advertises AMX) faults. So the
 * kernels run only after lc_amx_request() got the grant and lc_amx_use(1) switched them on, which
 * llmcore_cpu_simd.library does at load when /proc/cpuinfo lists amx_tile and amx_int8; everywhere
 * else the AVX-512 / AVX2 packed kernels run, with the same bits. The tile code is compiled into the
 * AVX-512 build where the compiler has -mamx-tile -mamx-int8 (isa.py adds them on AMX CPUs). */
#ifndef LC_AMX_H
#define LC_AMX_H

#include <stddef.h>
#include <stdint.h>

#include "lc_simd.h"

#if defined(LC_AVX512) && defined(__AMX_TILE__) && defined(__AMX_INT8__) && defined(__x86_64__)
#define LC_AMX_KERNELS 1
/* tokens per tile: the rows of an activation tile */
#define LC_AMX_TOKENS 16
#endif

/* cffi-cdef: begin */
/* asks the OS for the tile state (once; later calls return the first answer): 1 granted, 0 refused */
int lc_amx_request(void);
/* 1 when this build has the AMX kernels */
int lc_amx_kernels(void);
/* switches the AMX kernels on (only when granted and built) or off; returns whether they are on */
int lc_amx_use(int on);
/* 1 while the packed GEMM takes its token groups through the tiles */
int lc_amx_active(void);
/* cffi-cdef: end */

#if defined(LC_AMX_KERNELS)
/* the tile configuration of lc_amx_lane_sums on this thread, and its release after */
void lc_amx_tiles_begin(void);
void lc_amx_tiles_end(void);
/* One 32-block of 16 weight rows times LC_AMX_TOKENS activation rows, as the exact int32 sums of each
 * four products: sums[l][t][r] = sum over j < 4 of w(r, 4l + j) * x(t, 4l + j), for lane l < 8.
 * w[l][r]: row r's quants 4l..4l+3 (mm_packed.c's packed layout), unsigned bytes or, with w_signed,
 * signed ones; x: token 0's 32 signed quants, each next token x_stride bytes on. */
void lc_amx_lane_sums(const int32_t w[8][16], const int8_t *x, size_t x_stride, int w_signed,
                      int32_t sums[8][LC_AMX_TOKENS][16]);
#endif

#endif
