/* CLIP vision encoders' ops (multimodal projector files, llama.cpp's tools/mtmd). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "lc_clip.h"
#include "lc_simd.h"
#include "lc_types.h"

/* ggml's CPU quick GELU (GGML_GELU_QUICK_FP16): x * (1 / (1 + expf(-1.702 x))) for every f16 value
 * x, rounded to f16, read from a table indexed by the f16 value of the input. Filled once, on first
 * use, with the C library's expf as ggml_gelu_quick_f32 calls it. */
static float gelu_quick_table[1 << 16];
static pthread_once_t gelu_quick_table_once = PTHREAD_ONCE_INIT;

static void fill_gelu_quick_table(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) {
        const float x = lc_fp16_to_fp32((lc_fp16_t)i);
        gelu_quick_table[i] = lc_fp16_to_fp32(lc_fp32_to_fp16(x * (1.0f / (1.0f + expf(-1.702f * x)))));
    }
}

/* GELU_QUICK src0 [ne0] (every value of the tensor): dst = the table's entry for f16(x), eight
 * values at a time rounded by F16C (round to nearest even, as lc_fp32_to_fp16) and gathered */
void lc_op_gelu_quick(const lc_node *nd, const lc_task *task) {
    pthread_once(&gelu_quick_table_once, fill_gelu_quick_table);
    const float *x = nd->src[0];
    float *y = nd->dst;
    int64_t i0, i1;
    share(nd->ne[0], task->ith, task->nth, &i0, &i1);
    int64_t i = i0;
#if defined(LC_AVX2)
    for (; i + 8 <= i1; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(y + i, _mm256_i32gather_ps(gelu_quick_table, _mm256_cvtepu16_epi32(h), 4));
    }
#endif
    for (; i < i1; i++) y[i] = gelu_quick_table[lc_fp32_to_fp16(x[i])];
}
