/* RMSNorm over the last dim, Hugging Face Qwen3RMSNorm order:
 * out = (x * rsqrt(mean(x^2) + eps)).to(x.dtype) * weight, written in x's dtype. */
#include "common.h"
#include "entry.h"
#include "norm_row.h"
#include "parallel.h"

static void norm_rows(const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight, int64_t rows,
                      int64_t cols, float eps) {
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        q3_norm_row(out, q3_row_offset(out, row), x, q3_row_offset(x, row), weight, cols, eps);
    }
}

int q3_rms_norm(q3_tensor out, q3_tensor x, q3_tensor weight, double eps, void *stream) {
    Q3_ENTER("rms_norm", q3_check_rms_norm_call(op, &out, &x, &weight, eps));
    norm_rows(&out, &x, &weight, q3_rows(&x), x.shape[x.ndim - 1], (float)eps);
    return Q3_OK;
}
