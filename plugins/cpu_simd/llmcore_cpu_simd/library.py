"""The compiled library, opened through cffi in ABI mode. The declarations below mirror
csrc/lc_graph.h and csrc/lc_types.h: keep them in step."""

from __future__ import annotations

import functools

from cffi import FFI

from llmcore_cpu_simd.build import build

CDEF = """
enum lc_op {
    LC_OP_GET_ROWS, LC_OP_QUANTIZE, LC_OP_MUL_MAT, LC_OP_ADD, LC_OP_MUL, LC_OP_SCALE,
    LC_OP_RMS_NORM, LC_OP_NORM, LC_OP_ROPE, LC_OP_SILU, LC_OP_GELU, LC_OP_SWIGLU, LC_OP_GEGLU,
    LC_OP_KV_STORE, LC_OP_ATTENTION, LC_OP_COUNT
};
typedef struct {
    int32_t op;
    int32_t type;
    const void *src[4];
    void *dst;
    int64_t ne[4];
    int64_t row_bytes;
    float f[8];
    int32_t i[4];
} lc_node;
typedef struct lc_pool lc_pool;
typedef struct {
    lc_node *nodes;
    int32_t n_nodes;
    lc_pool *pool;
    float *scratch;
    int64_t scratch_floats;
} lc_program;
typedef void (*lc_vec_dot_fn)(int n, float *s, const void *w_row, const void *x_row);
typedef void (*lc_dequant_row_fn)(const void *w_row, float *y, int64_t n);
typedef struct {
    int block_size; size_t type_size;
    int vec_dot_type;
    lc_vec_dot_fn vec_dot; lc_dequant_row_fn dequant_row;
} lc_type_traits;
extern const lc_type_traits lc_traits[40];

lc_pool *lc_pool_new(int n_threads);
void lc_pool_free(lc_pool *pool);
int lc_pool_threads(const lc_pool *pool);
int lc_graph_run(const lc_program *program, int32_t n_kv);
void lc_quantize_row(int vec_dot_type, const float *x, void *y, int64_t n);
size_t lc_packed_bytes(int type, int64_t k);
void lc_profile_get(double *seconds, int64_t *counts);
void lc_profile_reset(void);
const char *lc_isa(void);
"""

ffi = FFI()
ffi.cdef(CDEF)


@functools.cache
def load(level: str):
    """The library built for ISA ``level`` (compiled on first use), as a cffi lib object."""
    return ffi.dlopen(str(build(level)))
