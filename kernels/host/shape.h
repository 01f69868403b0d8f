/* Sizes and row offsets of a q3_tensor, counted in elements. */
#ifndef Q3_HOST_SHAPE_H
#define Q3_HOST_SHAPE_H

#include <stdint.h>

#include "qwen3_kernels.h"

/* Number of rows when all but the last dim are flattened. */
static inline int64_t q3_rows(const q3_tensor *t) {
    int64_t rows = 1;
    for (int d = 0; d + 1 < t->ndim; ++d) rows *= t->shape[d];
    return rows;
}

/* Element offset of the first element of flattened row `row` (all dims but the last). */
static inline int64_t q3_row_offset(const q3_tensor *t, int64_t row) {
    int64_t offset = 0;
    for (int d = t->ndim - 2; d >= 0; --d) {
        offset += (row % t->shape[d]) * t->strides[d];
        row /= t->shape[d];
    }
    return offset;
}

static inline int64_t q3_numel(const q3_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; ++d) n *= t->shape[d];
    return n;
}

#endif
