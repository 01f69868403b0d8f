/* Softmax over the last dim, and the causal variant over x [..., q_len, k_len]: max-subtracted,
 * exp in float32 (sum accumulated in double), written once in x's dtype. A row that is all -inf
 * yields NaN, as PyTorch does. */
#include "common.h"
#include "entry.h"
#include "parallel.h"

/* Softmax of the first `visible` entries of a row; entries visible .. cols-1 are written as 0. */
static void softmax_row(const q3_tensor *out, int64_t out_offset, int64_t out_stride,
                        const q3_tensor *x, int64_t x_offset, int64_t x_stride, int64_t visible,
                        int64_t cols) {
    float max_value = -INFINITY;
    for (int64_t c = 0; c < visible; ++c) {
        max_value = fmaxf(max_value, q3_load(x, x_offset + c * x_stride));
    }
    double sum = 0.0;
    for (int64_t c = 0; c < visible; ++c) {
        sum += expf(q3_load(x, x_offset + c * x_stride) - max_value);
    }
    const float total = (float)sum;
    for (int64_t c = 0; c < visible; ++c) {
        const float e = expf(q3_load(x, x_offset + c * x_stride) - max_value);
        q3_store(out, out_offset + c * out_stride, e / total);
    }
    for (int64_t c = visible; c < cols; ++c) q3_store(out, out_offset + c * out_stride, 0.0f);
}

int q3_softmax(q3_tensor out, q3_tensor x, void *stream) {
    Q3_ENTER("softmax", q3_check_softmax_call(op, &out, &x));

    const int64_t rows = q3_rows(&x), cols = x.shape[x.ndim - 1];
    const int64_t x_stride = x.strides[x.ndim - 1], out_stride = out.strides[out.ndim - 1];
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        softmax_row(&out, q3_row_offset(&out, row), out_stride, &x, q3_row_offset(&x, row),
                    x_stride, cols, cols);
    }
    return Q3_OK;
}

int q3_causal_softmax(q3_tensor out, q3_tensor x, void *stream) {
    Q3_ENTER("causal_softmax", q3_check_causal_softmax_call(op, &out, &x));
    const int64_t q_len = x.shape[x.ndim - 2], k_len = x.shape[x.ndim - 1];

    const int64_t rows = q3_rows(&x);
    const int64_t x_stride = x.strides[x.ndim - 1], out_stride = out.strides[out.ndim - 1];
#pragma omp parallel for schedule(static) if (q3_parallel(rows * k_len))
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t i = row % q_len;
        softmax_row(&out, q3_row_offset(&out, row), out_stride, &x, q3_row_offset(&x, row),
                    x_stride, i + (k_len - q_len) + 1, k_len);
    }
    return Q3_OK;
}
