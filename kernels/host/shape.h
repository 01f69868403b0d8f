/* Sizes and row offsets of a q3_tensor, counted in elements, and the bytes of an element. */
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

/* Elements from the first element of a strided tensor to its last, inclusive; 0 when it is empty. */
static inline int64_t q3_extent(const q3_tensor *t) {
    int64_t last = 0;
    for (int d = 0; d < t->ndim; ++d) {
        if (t->shape[d] == 0) return 0;
        last += (t->shape[d] - 1) * t->strides[d];
    }
    return last + 1;
}

/* Bytes of one element of the ABI's dtype `dtype`. */
static inline int64_t q3_dtype_bytes(int dtype) {
    switch (dtype) {
    case Q3_F16: case Q3_BF16: return 2;
    case Q3_F32: case Q3_I32: return 4;
    default: return 8;
    }
}

#endif
