/* Calls are out of place (qwen3_kernels.h): no output may share memory with another tensor of the
 * call. Tensors whose byte spans (first to last element) do not meet are apart; tensors of one
 * layout, such as the K and V halves of one cache, are apart when no element of the one lies on an
 * element of the other; any other meeting spans are refused. */
#include <stddef.h>
#include <stdint.h>

#include "entry.h"

/* The bytes [*first, *end) from a tensor's first element to the end of its last; 0 when it has no
 * element (or no data: an absent optional tensor). */
static int byte_span(const q3_tensor *t, uintptr_t *first, uintptr_t *end) {
    const int64_t extent = q3_extent(t);
    if (t->data == NULL || extent == 0) return 0;
    *first = (uintptr_t)t->data;
    *end = *first + (uintptr_t)(extent * q3_dtype_bytes(t->dtype));
    return 1;
}

static int same_layout(const q3_tensor *a, const q3_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; ++d) {
        if (a->shape[d] != b->shape[d] || a->strides[d] != b->strides[d]) return 0;
    }
    return 1;
}

/* Whether delta = sum of k[d] * stride[d] with |k[d]| < size[d], over the n {stride, size} dims by
 * rising stride: then an element of a tensor lies on one of the same layout delta elements on.
 * Exact when each stride exceeds the reach of the smaller ones (a writable output's layout), as then
 * only the quotients around delta / stride can leave a remainder the smaller dims reach. */
static int lattice_meets(int64_t delta, const int64_t (*dims)[2], int n) {
    if (n == 0) return delta == 0;
    int64_t reach = 0;
    for (int d = 0; d < n; ++d) reach += (dims[d][1] - 1) * dims[d][0];
    if (delta > reach || delta < -reach) return 0;
    const int64_t stride = dims[n - 1][0], size = dims[n - 1][1], quotient = delta / stride;
    for (int64_t k = quotient - 1; k <= quotient + 1; ++k) {
        if (k > -size && k < size && lattice_meets(delta - k * stride, dims, n - 1)) return 1;
    }
    return 0;
}

/* Whether two tensors of one layout `delta_bytes` apart share an element's memory. */
static int layout_meets(const q3_tensor *t, int64_t delta_bytes) {
    const int64_t element = q3_dtype_bytes(t->dtype);
    if (delta_bytes % element != 0) return 1;  /* elements out of step: some straddle */
    int64_t dims[Q3_MAX_DIMS][2];
    const int n = q3_dims_by_stride(t, dims);
    return lattice_meets(delta_bytes / element, (const int64_t (*)[2])dims, n);
}

static int meets(const q3_tensor *written, const q3_tensor *other) {
    uintptr_t first, end, other_first, other_end;
    if (!byte_span(written, &first, &end) || !byte_span(other, &other_first, &other_end)) return 0;
    if (first >= other_end || other_first >= end) return 0;
    if (!same_layout(written, other)) return 1;
    return layout_meets(written, (int64_t)(other_first - first));
}

int q3_check_apart(const char *op, const q3_named_tensor *tensors, int count) {
    for (int i = 0; i < count; ++i) {
        if (!tensors[i].written) continue;
        for (int j = 0; j < count; ++j) {
            const int seen = tensors[j].written && j < i;  /* the pair was checked from j */
            if (j == i || seen || !meets(tensors[i].tensor, tensors[j].tensor)) continue;
            return q3_fail(Q3_BAD_STRIDES, op, "output '%s' shares memory with '%s'; calls are out of place",
                           tensors[i].name, tensors[j].name);
        }
    }
    return Q3_OK;
}
