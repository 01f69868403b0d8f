/* Fused residual add + RMSNorm, as Qwen3 decoder layers chain them:
 * sum = x + residual (in x's dtype); out = rms_norm(sum, weight, eps). */
#include "common.h"
#include "entry.h"
#include "norm_row.h"
#include "parallel.h"

int q3_add_rms_norm(q3_tensor out, q3_tensor sum, q3_tensor x, q3_tensor residual,
                    q3_tensor weight, double eps, void *stream) {
    Q3_ENTER("add_rms_norm", q3_check_add_rms_norm_call(op, &out, &sum, &x, &residual, &weight, eps));

    const int64_t rows = q3_rows(&x);
    const int64_t cols = x.shape[x.ndim - 1];
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t x_offset = q3_row_offset(&x, row);
        const int64_t residual_offset = q3_row_offset(&residual, row);
        const int64_t sum_offset = q3_row_offset(&sum, row);
        for (int64_t c = 0; c < cols; ++c) {
            float value = q3_load(&x, x_offset + c * x.strides[x.ndim - 1]) +
                          q3_load(&residual, residual_offset + c * residual.strides[x.ndim - 1]);
            q3_store(&sum, sum_offset + c * sum.strides[sum.ndim - 1], value);
        }
        q3_norm_row(&out, q3_row_offset(&out, row), &sum, sum_offset, &weight, cols, (float)eps);
    }
    return Q3_OK;
}
