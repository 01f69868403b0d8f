/* Linear layer: out[..., n] = sum_k x[..., k] * weight[n, k] (+ bias[n]), accumulated in double
 * and rounded once to the output dtype. x, weight, bias and out share one dtype. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

int q3_linear(q3_tensor out, q3_tensor x, q3_tensor weight, q3_tensor bias, void *stream) {
    Q3_ENTER("linear", q3_check_linear_call(op, &out, &x, &weight, &bias));
    const int has_bias = bias.data != NULL;
    const int64_t in_features = x.shape[x.ndim - 1], out_features = weight.shape[0];

    float *packed = malloc(sizeof(float) * (size_t)(out_features * in_features + 1));
    size_t stride = 0;
    char *scratch = q3_scratch_alloc(sizeof(float) * (size_t)(in_features + 1), &stride);
    if (packed == NULL || scratch == NULL) {
        free(packed);
        free(scratch);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate float32 copies of 'weight' and 'x'");
    }
#pragma omp parallel for schedule(static) if (q3_parallel(out_features * in_features))
    for (int64_t n = 0; n < out_features; ++n) {
        for (int64_t k = 0; k < in_features; ++k) {
            packed[n * in_features + k] =
                q3_load(&weight, n * weight.strides[0] + k * weight.strides[1]);
        }
    }
    const int64_t rows = q3_rows(&x);
    const int64_t x_stride = x.strides[x.ndim - 1];
    const int64_t out_stride = out.strides[out.ndim - 1];
#pragma omp parallel if (q3_parallel(rows * in_features * out_features))
    {
        float *row_values = (float *)(scratch + stride * (size_t)q3_thread_id());
#pragma omp for schedule(static)
        for (int64_t row = 0; row < rows; ++row) {
            const int64_t x_offset = q3_row_offset(&x, row);
            const int64_t out_offset = q3_row_offset(&out, row);
            for (int64_t k = 0; k < in_features; ++k) {
                row_values[k] = q3_load(&x, x_offset + k * x_stride);
            }
            for (int64_t n = 0; n < out_features; ++n) {
                const float *w = packed + n * in_features;
                double acc = has_bias ? q3_load(&bias, n * bias.strides[0]) : 0.0;
                for (int64_t k = 0; k < in_features; ++k) acc += (double)row_values[k] * w[k];
                q3_store(&out, out_offset + n * out_stride, (float)acc);
            }
        }
    }
    free(scratch);
    free(packed);
    return Q3_OK;
}
