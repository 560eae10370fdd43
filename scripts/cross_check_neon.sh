#!/usr/bin/env bash
# Cross-check the cpu_simd quant kernels' aarch64 NEON paths against their scalar paths.
# Cross-compiles csrc/quants_kq.c + csrc/quants_legacy.c for aarch64 three times (baseline NEON,
# NEON with the armv8.2 dot-product extension, and scalar with __ARM_NEON undefined), runs one
# deterministic driver per build under qemu-aarch64-static and compares every dot product of both
# NEON builds with scalar: |neon - scalar| <= 1e-5 * (sum |w_i * x_i| + |scalar|).
# Needs (Debian): apt-get install gcc-aarch64-linux-gnu qemu-user-static
set -euo pipefail
CSRC="$(cd "$(dirname "$0")/.." && pwd)/plugins/cpu_simd/llmcore_cpu_simd/csrc"
CC="${AARCH64_CC:-aarch64-linux-gnu-gcc}"
QEMU="${QEMU_AARCH64:-qemu-aarch64-static}"
for tool in "$CC" "$QEMU"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install gcc-aarch64-linux-gnu qemu-user-static)"; exit 2; }
done
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/driver.c" <<'C_EOF'
/* deterministic inputs; prints "case value scale" for every dot product */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "lc_quants_kq.h"
#include "lc_quants_legacy.h"

static uint32_t state = 12345u;
static uint32_t next_u32(void) { state = state * 1664525u + 1013904223u; return state >> 8; }
static float next_float(void) { return (float)(next_u32() & 0xFFFF) / 32768.f - 1.f; }

typedef void (*dot_fn)(int, float *, const void *, const void *);
typedef void (*deq_fn)(const void *, float *, int64_t);

/* random bytes with valid fp16 scale fields at the given byte offsets */
static void random_blocks(uint8_t *w, int nblocks, size_t tsize, const int *f16_off, int n_off) {
    for (size_t i = 0; i < nblocks * tsize; ++i) w[i] = (uint8_t)next_u32();
    for (int b = 0; b < nblocks; ++b)
        for (int k = 0; k < n_off; ++k) {
            const lc_fp16_t h = lc_fp32_to_fp16(next_float() * 0.01f);
            memcpy(w + b * tsize + f16_off[k], &h, 2);
        }
}

static double abs_dot(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += fabs((double)a[i] * b[i]);
    return s;
}

enum { N = 2816 };
static uint8_t w[N * 2], act[N * 2];
static float xf[N], wf[N], af[N];

int main(void) {
    struct { const char *name; dot_fn dot; deq_fn deq; int bsize; size_t tsize; int off[2]; int n_off; } kq[] = {
        {"q2_K", lc_vec_dot_q2_K, lc_dequant_row_q2_K, 256, sizeof(block_q2_K), {80, 82}, 2},
        {"q3_K", lc_vec_dot_q3_K, lc_dequant_row_q3_K, 256, sizeof(block_q3_K), {108, 0}, 1},
        {"q4_K", lc_vec_dot_q4_K, lc_dequant_row_q4_K, 256, sizeof(block_q4_K), {0, 2}, 2},
        {"q5_K", lc_vec_dot_q5_K, lc_dequant_row_q5_K, 256, sizeof(block_q5_K), {0, 2}, 2},
        {"q6_K", lc_vec_dot_q6_K, lc_dequant_row_q6_K, 256, sizeof(block_q6_K), {208, 0}, 1},
        {"q4_0", lc_vec_dot_q4_0, lc_dequant_row_q4_0, 32, sizeof(block_q4_0), {0, 0}, 1},
        {"q5_0", lc_vec_dot_q5_0, lc_dequant_row_q5_0, 32, sizeof(block_q5_0), {0, 0}, 1},
        {"q5_1", lc_vec_dot_q5_1, lc_dequant_row_q5_1, 32, sizeof(block_q5_1), {0, 2}, 2},
    };
    for (size_t t = 0; t < sizeof(kq) / sizeof(kq[0]); ++t) {
        for (int rep = 0; rep < 4; ++rep) {
            const int n = rep == 0 ? kq[t].bsize : N;
            random_blocks(w, n / kq[t].bsize, kq[t].tsize, kq[t].off, kq[t].n_off);
            kq[t].deq(w, wf, n);
            for (int i = 0; i < n; ++i) xf[i] = next_float() * 4.f;
            if (kq[t].bsize == 256) {
                lc_quantize_row_q8_K(xf, act, n);
                const block_q8_K *q = (const block_q8_K *)act;
                for (int i = 0; i < n; ++i) af[i] = q[i / 256].d * q[i / 256].qs[i % 256];
            } else { /* q8_0 / q8_1 built directly: d, (s), 32 quants in [-127, 127] */
                const int is_q8_1 = kq[t].dot == lc_vec_dot_q5_1;
                for (int b = 0; b < n / 32; ++b) {
                    const float d = fabsf(next_float()) * 0.05f + 1e-3f;
                    int8_t qs[32]; int sum = 0;
                    for (int l = 0; l < 32; ++l) { qs[l] = (int8_t)((int)(next_u32() % 255) - 127); sum += qs[l]; }
                    const lc_fp16_t hd = lc_fp32_to_fp16(d), hs = lc_fp32_to_fp16(d * sum);
                    uint8_t *blk = act + b * (is_q8_1 ? sizeof(block_q8_1) : sizeof(block_q8_0));
                    memcpy(blk, &hd, 2);
                    if (is_q8_1) memcpy(blk + 2, &hs, 2);
                    memcpy(blk + (is_q8_1 ? 4 : 2), qs, 32);
                    for (int l = 0; l < 32; ++l) af[32 * b + l] = lc_fp16_to_fp32(hd) * qs[l];
                }
            }
            float s;
            kq[t].dot(n, &s, w, act);
            printf("%s/%d %.9e %.9e\n", kq[t].name, rep, s, abs_dot(wf, af, n));
        }
    }
    for (int rep = 0; rep < 4; ++rep) {
        const int n = rep == 0 ? 7 : N - rep;
        lc_bf16_t *a = (lc_bf16_t *)w, *b = (lc_bf16_t *)act;
        for (int i = 0; i < n; ++i) {
            const float fa = next_float(), fb = next_float();
            uint32_t ua, ub; memcpy(&ua, &fa, 4); memcpy(&ub, &fb, 4);
            a[i] = (lc_bf16_t)(ua >> 16); b[i] = (lc_bf16_t)(ub >> 16);
        }
        lc_dequant_row_bf16(a, wf, n);
        lc_dequant_row_bf16(b, af, n);
        float s;
        lc_vec_dot_bf16(n, &s, a, b);
        printf("bf16/%d %.9e %.9e\n", rep, s, abs_dot(wf, af, n));
    }
    return 0;
}
C_EOF

build() { # $1 = output, rest = extra flags
    local out="$1"; shift
    "$CC" -O3 -Wall -Werror -static "$@" -I"$CSRC" "$CSRC/quants_kq.c" "$CSRC/quants_legacy.c" "$WORK/driver.c" -o "$out" -lm
}
build "$WORK/scalar" -U__ARM_NEON
"$QEMU" "$WORK/scalar" > "$WORK/scalar.txt"
for variant in neon neon_dotprod; do
    if [ "$variant" = neon ]; then build "$WORK/$variant"; else build "$WORK/$variant" -march=armv8.2-a+dotprod; fi
    "$QEMU" "$WORK/$variant" > "$WORK/$variant.txt"
    echo -n "$variant: "
    paste "$WORK/$variant.txt" "$WORK/scalar.txt" | awk '
    $1 != $4 { print "case mismatch: " $1 " vs " $4; bad = 1; next }
    { diff = $2 - $5; if (diff < 0) diff = -diff; mag = $5 < 0 ? -$5 : $5
      if (diff > 1e-5 * ($6 + mag)) { print "MISMATCH " $1 ": neon " $2 " scalar " $5; bad = 1 } ; n++ }
    END { if (bad || n == 0) exit 1; print "all NEON results match scalar (" n " dot products)" }'
done
