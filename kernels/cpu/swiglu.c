/* SwiGLU activation of the Qwen3 MLP: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). */
#include "common.h"
#include "entry.h"
#include "parallel.h"

int q3_swiglu(q3_tensor out, q3_tensor gate, q3_tensor up, void *stream) {
    Q3_ENTER("swiglu", q3_check_swiglu_call(op, &out, &gate, &up));

    const int64_t rows = q3_rows(&gate), cols = gate.shape[gate.ndim - 1];
    const int last = gate.ndim - 1;
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t g0 = q3_row_offset(&gate, row), u0 = q3_row_offset(&up, row);
        const int64_t o0 = q3_row_offset(&out, row);
        for (int64_t c = 0; c < cols; ++c) {
            const float g = q3_load(&gate, g0 + c * gate.strides[last]);
            const float u = q3_load(&up, u0 + c * up.strides[last]);
            q3_store(&out, o0 + c * out.strides[last], g / (1.0f + expf(-g)) * u);
        }
    }
    return Q3_OK;
}
