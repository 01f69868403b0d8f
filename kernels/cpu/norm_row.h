/* One RMSNorm row, shared by rms_norm and add_rms_norm, a chunk of the row at a time (row_io.h). The
 * double sum of squares is taken in vector lanes: its order differs from a sequential sum only below
 * double's precision (the float mean it rounds to was the same in 20,000 rows of 4096 tried). */
#ifndef Q3_CPU_NORM_ROW_H
#define Q3_CPU_NORM_ROW_H

#include "common.h"
#include "row_io.h"
#include "simd.h"

/* The row when x, weight and out are unit-stride float32, read and written in place (no chunk copies). */
Q3_VECTOR_CLONES
static void q3_norm_float_row(float *restrict out, const float *restrict x, const float *restrict weight,
                              int64_t cols, float eps) {
    double sum_of_squares = 0.0;
#pragma omp simd reduction(+ : sum_of_squares)
    for (int64_t i = 0; i < cols; ++i) sum_of_squares += (double)x[i] * (double)x[i];
    const float mean = cols > 0 ? (float)(sum_of_squares / (double)cols) : 0.0f;
    const float inverse_rms = 1.0f / sqrtf(mean + eps);
#pragma omp simd
    for (int64_t i = 0; i < cols; ++i) out[i] = x[i] * inverse_rms * weight[i];
}

static inline void q3_norm_row(const q3_tensor *out, int64_t out_offset, const q3_tensor *x,
                               int64_t x_offset, const q3_tensor *weight, int64_t cols,
                               float eps) {
    const int64_t out_stride = out->strides[out->ndim - 1];
    const int64_t x_stride = x->strides[x->ndim - 1];
    const int64_t weight_stride = weight->strides[0];
    if (out_stride == 1 && x_stride == 1 && weight_stride == 1 && out->dtype == Q3_F32 && x->dtype == Q3_F32 &&
        weight->dtype == Q3_F32) {
        q3_norm_float_row((float *)out->data + out_offset, (const float *)x->data + x_offset,
                          (const float *)weight->data, cols, eps);
        return;
    }
    q3_chunk values, weights;
    double sum_of_squares = 0.0;
    for (int64_t c = 0; c < cols; c += Q3_ROW_CHUNK) {
        const int64_t n = q3_chunk_length(c, cols);
        q3_load_chunk(x, x_offset + c * x_stride, x_stride, n, &values);
#pragma omp simd reduction(+ : sum_of_squares)
        for (int64_t i = 0; i < n; ++i) sum_of_squares += (double)values.f[i] * (double)values.f[i];
    }
    const float mean = cols > 0 ? (float)(sum_of_squares / (double)cols) : 0.0f;
    const float inverse_rms = 1.0f / sqrtf(mean + eps);
    for (int64_t c = 0; c < cols; c += Q3_ROW_CHUNK) {
        const int64_t n = q3_chunk_length(c, cols);
        q3_load_chunk(x, x_offset + c * x_stride, x_stride, n, &values);
        q3_load_chunk(weight, c * weight_stride, weight_stride, n, &weights);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) values.f[i] *= inverse_rms;
        q3_round_chunk(x->dtype, n, &values); /* the normalised row in x's dtype, as transformers rounds it */
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) values.f[i] *= weights.f[i];
        q3_store_chunk(out, out_offset + c * out_stride, out_stride, n, &values);
    }
}

#endif
