/* One RMSNorm row, shared by rms_norm and add_rms_norm. */
#ifndef Q3_CPU_NORM_ROW_H
#define Q3_CPU_NORM_ROW_H

#include "common.h"

static inline void q3_norm_row(const q3_tensor *out, int64_t out_offset, const q3_tensor *x,
                               int64_t x_offset, const q3_tensor *weight, int64_t cols,
                               float eps) {
    const int64_t out_stride = out->strides[out->ndim - 1];
    const int64_t x_stride = x->strides[x->ndim - 1];
    double sum_of_squares = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
        double value = q3_load(x, x_offset + c * x_stride);
        sum_of_squares += value * value;
    }
    const float mean = cols > 0 ? (float)(sum_of_squares / (double)cols) : 0.0f;
    const float inverse_rms = 1.0f / sqrtf(mean + eps);
    for (int64_t c = 0; c < cols; ++c) {
        float normed = q3_round_to(x->dtype, q3_load(x, x_offset + c * x_stride) * inverse_rms);
        q3_store(out, out_offset + c * out_stride,
                 normed * q3_load(weight, c * weight->strides[0]));
    }
}

#endif
