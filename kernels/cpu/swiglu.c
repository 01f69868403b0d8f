/* SwiGLU activation of the Qwen3 MLP: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). */
#include "common.h"
#include "entry.h"
#include "exp_float.h"
#include "parallel.h"
#include "row_io.h"
#include "simd.h"

/* g[i] = silu(g[i]) * u[i] over one chunk. */
Q3_VECTOR_CLONES
static void swiglu_chunk(float *restrict g, const float *restrict u, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + q3_exp_single(-g[i])) * u[i];
}

/* The same over unit-stride float32 rows, read and written in place (no chunk copies). */
Q3_VECTOR_CLONES
static void swiglu_float_row(float *restrict out, const float *restrict g, const float *restrict u, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + q3_exp_single(-g[i])) * u[i];
}

int q3_swiglu(q3_tensor out, q3_tensor gate, q3_tensor up, void *stream) {
    Q3_ENTER("swiglu", q3_check_swiglu_call(op, &out, &gate, &up));

    const int64_t rows = q3_rows(&gate), cols = gate.shape[gate.ndim - 1];
    const int last = gate.ndim - 1;
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t g0 = q3_row_offset(&gate, row), u0 = q3_row_offset(&up, row);
        const int64_t o0 = q3_row_offset(&out, row);
        const int64_t gs = gate.strides[last], us = up.strides[last], os = out.strides[last];
        if (gs == 1 && us == 1 && os == 1 && gate.dtype == Q3_F32 && up.dtype == Q3_F32 && out.dtype == Q3_F32) {
            swiglu_float_row((float *)out.data + o0, (const float *)gate.data + g0, (const float *)up.data + u0, cols);
            continue;
        }
        q3_chunk g, u;
        for (int64_t c = 0; c < cols; c += Q3_ROW_CHUNK) {
            const int64_t n = q3_chunk_length(c, cols);
            q3_load_chunk(&gate, g0 + c * gs, gs, n, &g);
            q3_load_chunk(&up, u0 + c * us, us, n, &u);
            swiglu_chunk(g.f, u.f, n);
            q3_store_chunk(&out, o0 + c * os, os, n, &g);
        }
    }
    return Q3_OK;
}
