/* AMX where the OS grants it (see lc_amx.h).
 *
 * Written against Intel's SDM (TDPBSUD / TDPBSSD, LDTILECFG palette 1) and compiled here, but not
 * yet run on AMX hardware: the tests that compare its outputs with vec_dot's bit for bit run only
 * where /proc/cpuinfo lists amx_tile and the OS grants the tile state. */
#include "lc_amx.h"

#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
/* Linux's request for an xfeature the kernel keeps off by default (asm/prctl.h), and AMX's tile
 * data's xfeature number (asm/fpu/types.h) */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#endif

static int amx_answer;  /* 0: not asked yet; 1 granted; -1 refused */
static int amx_on;

int lc_amx_request(void) {
    if (amx_answer == 0) {
#if defined(__linux__) && defined(__x86_64__)
        /* fails with EOPNOTSUPP where the CPU or the kernel lacks the state, EINVAL on kernels
         * before 5.16 (no such request), ENOSPC where a thread's sigaltstack is too small for
         * the larger signal frame: all mean no tiles */
        amx_answer = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 1 : -1;
#else
        amx_answer = -1;
#endif
    }
    return amx_answer == 1;
}

int lc_amx_kernels(void) {
#if defined(LC_AMX_KERNELS)
    return 1;
#else
    return 0;
#endif
}

int lc_amx_use(int on) {
    amx_on = on && amx_answer == 1 && lc_amx_kernels();
    return amx_on;
}

int lc_amx_active(void) { return amx_on; }

#if defined(LC_AMX_KERNELS)

/* tiles 0-3: int32 sums, 16 tokens x 16 rows; 4-5: activations, 16 tokens x 4 bytes (one lane of
 * four quants); 6-7: weights, one row of 16 x 4 bytes. K is four bytes, one lane: each product sums
 * exactly the four quants one of ggml's float lanes takes (a wider K would add lanes together
 * before the float steps, another rounding) */
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;
_Static_assert(sizeof(tile_config) == 64, "LDTILECFG reads a 64-byte configuration");

static const tile_config lane_tiles = {
    .palette_id = 1,
    .colsb = {64, 64, 64, 64, 4, 4, 64, 64},
    .rows = {LC_AMX_TOKENS, LC_AMX_TOKENS, LC_AMX_TOKENS, LC_AMX_TOKENS, LC_AMX_TOKENS, LC_AMX_TOKENS, 1, 1},
};

void lc_amx_tiles_begin(void) { _tile_loadconfig(&lane_tiles); }

/* back to the init state: the kernel then saves and restores no tile data on a context switch */
void lc_amx_tiles_end(void) { _tile_release(); }

/* lane l through sums tile s, activation tile a, weight tile b (the tile numbers are immediates) */
#define LANE(l, s, a, b)                                                   \
    do {                                                                   \
        _tile_loadd(a, x + 4 * (l), x_stride);                             \
        _tile_loadd(b, w[l], 64);                                          \
        _tile_zero(s);                                                     \
        if (w_signed) _tile_dpbssd(s, a, b);                               \
        else _tile_dpbsud(s, a, b);                                        \
        _tile_stored(s, sums[l], 64);                                      \
    } while (0)

void lc_amx_lane_sums(const int32_t w[8][16], const int8_t *x, size_t x_stride, int w_signed,
                      int32_t sums[8][LC_AMX_TOKENS][16]) {
    /* the tile intrinsics are asm statements that name no memory: keep every store to w and x
     * before them and every read of sums after them */
    __asm__ volatile("" ::: "memory");
    LANE(0, 0, 4, 6);
    LANE(1, 1, 5, 7);
    LANE(2, 2, 4, 6);
    LANE(3, 3, 5, 7);
    LANE(4, 0, 4, 6);
    LANE(5, 1, 5, 7);
    LANE(6, 2, 4, 6);
    LANE(7, 3, 5, 7);
    __asm__ volatile("" ::: "memory");
}

#endif
