/* Fused residual add + RMSNorm, as Qwen3 decoder layers chain them:
 * sum = x + residual (in x's dtype); out = rms_norm(sum, weight, eps). */
#include "common.h"
#include "entry.h"
#include "norm_row.h"
#include "parallel.h"

static void add_norm_rows(const q3_tensor *out, const q3_tensor *sum, const q3_tensor *x,
                          const q3_tensor *residual, const q3_tensor *weight, float eps) {
    const int64_t rows = q3_rows(x);
    const int64_t cols = x->shape[x->ndim - 1];
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t x_offset = q3_row_offset(x, row);
        const int64_t residual_offset = q3_row_offset(residual, row);
        const int64_t sum_offset = q3_row_offset(sum, row);
        const int64_t xs = x->strides[x->ndim - 1], rs = residual->strides[residual->ndim - 1];
        const int64_t ss = sum->strides[sum->ndim - 1];
        q3_chunk a, b;
        for (int64_t c = 0; c < cols; c += Q3_ROW_CHUNK) {
            const int64_t n = q3_chunk_length(c, cols);
            q3_load_chunk(x, x_offset + c * xs, xs, n, &a);
            q3_load_chunk(residual, residual_offset + c * rs, rs, n, &b);
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) a.f[i] += b.f[i];
            q3_store_chunk(sum, sum_offset + c * ss, ss, n, &a);
        }
        q3_norm_row(out, q3_row_offset(out, row), sum, sum_offset, weight, cols, eps);
    }
}

int q3_add_rms_norm(q3_tensor out, q3_tensor sum, q3_tensor x, q3_tensor residual,
                    q3_tensor weight, double eps, void *stream) {
    Q3_ENTER("add_rms_norm", q3_check_add_rms_norm_call(op, &out, &sum, &x, &residual, &weight, eps));
    add_norm_rows(&out, &sum, &x, &residual, &weight, (float)eps);
    return Q3_OK;
}
