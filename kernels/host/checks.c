/* Validation of single tensors (see checks.h). */
#include <stdlib.h>

#include "checks.h"

int q3_check_tensor(const char *op, const char *name, const q3_tensor *t) {
    if (t->ndim < 0 || t->ndim > Q3_MAX_DIMS) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor '%s' has rank %d, outside [0, %d]", name,
                       t->ndim, Q3_MAX_DIMS);
    }
    for (int d = 0; d < t->ndim; ++d) {
        if (t->shape[d] < 0) {
            return q3_fail(Q3_BAD_SHAPE, op, "tensor '%s' has negative size %lld in dim %d",
                           name, (long long)t->shape[d], d);
        }
        if (t->strides[d] < 0) {
            return q3_fail(Q3_BAD_STRIDES, op, "tensor '%s' has negative stride %lld in dim %d",
                           name, (long long)t->strides[d], d);
        }
    }
    if (t->data == NULL && q3_numel(t) > 0) {
        return q3_fail(Q3_NULL_POINTER, op, "tensor '%s' has a null data pointer", name);
    }
    return Q3_OK;
}

int q3_check_float(const char *op, const char *name, const q3_tensor *t) {
    int status = q3_check_tensor(op, name, t);
    if (status != Q3_OK) return status;
    if (t->dtype != Q3_F32 && t->dtype != Q3_F16 && t->dtype != Q3_BF16) {
        return q3_fail(Q3_BAD_DTYPE, op,
                       "tensor '%s' has dtype %s; expected float32, float16 or bfloat16", name,
                       q3_dtype_name(t->dtype));
    }
    return Q3_OK;
}

int q3_check_index(const char *op, const char *name, const q3_tensor *t) {
    int status = q3_check_tensor(op, name, t);
    if (status != Q3_OK) return status;
    if (t->dtype != Q3_I32 && t->dtype != Q3_I64) {
        return q3_fail(Q3_BAD_DTYPE, op, "tensor '%s' has dtype %s; expected int32 or int64",
                       name, q3_dtype_name(t->dtype));
    }
    return Q3_OK;
}

int q3_check_ndim(const char *op, const char *name, const q3_tensor *t, int ndim) {
    if (t->ndim != ndim) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor '%s' has rank %d; expected %d", name, t->ndim,
                       ndim);
    }
    return Q3_OK;
}

int q3_check_same_dtype(const char *op, const char *name, const q3_tensor *t,
                        const char *like_name, const q3_tensor *like) {
    if (t->dtype != like->dtype) {
        return q3_fail(Q3_BAD_DTYPE, op, "tensor '%s' has dtype %s but '%s' has %s", name,
                       q3_dtype_name(t->dtype), like_name, q3_dtype_name(like->dtype));
    }
    return Q3_OK;
}

int q3_check_same_shape(const char *op, const char *name, const q3_tensor *t,
                        const char *like_name, const q3_tensor *like) {
    int same = t->ndim == like->ndim;
    for (int d = 0; same && d < t->ndim; ++d) same = t->shape[d] == like->shape[d];
    if (!same) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor '%s' does not have the shape of '%s'", name,
                       like_name);
    }
    return Q3_OK;
}

int q3_check_weight_dtype(const char *op, const char *name, const q3_tensor *w,
                          const q3_tensor *x) {
    if (w->dtype == x->dtype || (w->dtype == Q3_F32 && x->dtype != Q3_F32)) return Q3_OK;
    return q3_fail(Q3_BAD_DTYPE, op,
                   "tensor '%s' has dtype %s with x of dtype %s; expected %s or float32", name,
                   q3_dtype_name(w->dtype), q3_dtype_name(x->dtype), q3_dtype_name(x->dtype));
}

static int compare_extent(const void *a, const void *b) {
    const int64_t *x = (const int64_t *)a, *y = (const int64_t *)b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

int q3_dims_by_stride(const q3_tensor *t, int64_t dims[Q3_MAX_DIMS][2]) {
    int n = 0;
    for (int d = 0; d < t->ndim; ++d) {
        if (t->shape[d] > 1) {
            dims[n][0] = t->strides[d];
            dims[n][1] = t->shape[d];
            ++n;
        }
    }
    qsort(dims, (size_t)n, sizeof dims[0], compare_extent);
    return n;
}

int q3_check_writable(const char *op, const char *name, const q3_tensor *t) {
    /* Sorted by stride, each stride must exceed the span of all smaller dims together. */
    int64_t dims[Q3_MAX_DIMS][2];
    const int n = q3_dims_by_stride(t, dims);
    int64_t span = 1;
    for (int i = 0; i < n; ++i) {
        if (dims[i][0] < span) {
            return q3_fail(Q3_BAD_STRIDES, op,
                           "output '%s' has overlapping strides: two elements share memory",
                           name);
        }
        span = dims[i][0] * (dims[i][1] - 1) + span;
    }
    return Q3_OK;
}

int q3_check_index_set(const char *op, const char *name, const int64_t *values, int64_t count,
                       int64_t limit, int64_t request) {
    uint64_t *seen = (uint64_t *)calloc((size_t)(limit / 64 + 1), sizeof(uint64_t));
    if (seen == NULL) {
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the scratch to check tensor '%s'", name);
    }
    int status = Q3_OK;
    for (int64_t i = 0; i < count && status == Q3_OK; ++i) {
        const int64_t value = values[i];
        if (value < 0 || value >= limit) {
            status = request < 0
                ? q3_fail(Q3_BAD_VALUE, op, "tensor '%s' holds %lld at [%lld], outside [0, %lld)", name,
                          (long long)value, (long long)i, (long long)limit)
                : q3_fail(Q3_BAD_VALUE, op, "tensor '%s' holds %lld at [%lld, %lld], outside [0, %lld)", name,
                          (long long)value, (long long)request, (long long)i, (long long)limit);
        } else if (seen[value / 64] & (1ull << (value % 64))) {
            status = request < 0
                ? q3_fail(Q3_BAD_VALUE, op, "tensor '%s' holds %lld twice", name, (long long)value)
                : q3_fail(Q3_BAD_VALUE, op, "tensor '%s' holds %lld twice for request %lld", name,
                          (long long)value, (long long)request);
        } else {
            seen[value / 64] |= 1ull << (value % 64);
        }
    }
    free(seen);
    return status;
}
