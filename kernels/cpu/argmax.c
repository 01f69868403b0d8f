/* out[b] = the first index of the largest value of logits[b, :]; NaN counts as the largest
 * (as torch.argmax), the first NaN wins. Two passes over a row, a chunk at a time in vector lanes: its
 * largest value (and whether it holds a NaN), then the first index holding that value (or a NaN). */
#include "common.h"
#include "entry.h"
#include "parallel.h"
#include "row_io.h"
#include "simd.h"

/* The largest of the n values and `largest`, NaNs passed over; *nan_seen set when one is NaN. */
Q3_VECTOR_CLONES
static float chunk_largest(const float *restrict v, int64_t n, float largest, int *nan_seen) {
    int nan = 0;
#pragma omp simd reduction(max : largest) reduction(| : nan)
    for (int64_t i = 0; i < n; ++i) {
        largest = v[i] > largest ? v[i] : largest;
        nan |= v[i] != v[i];
    }
    *nan_seen |= nan;
    return largest;
}

/* The first i < n whose v[i] equals `target` (is NaN, when `nan`); n when there is none. */
Q3_VECTOR_CLONES
static int64_t chunk_first(const float *restrict v, int64_t n, float target, int nan) {
    int64_t first = n;
#pragma omp simd reduction(min : first)
    for (int64_t i = 0; i < n; ++i) {
        const int hit = nan ? v[i] != v[i] : v[i] == target;
        first = hit && i < first ? i : first;
    }
    return first;
}

static int64_t row_argmax(const q3_tensor *logits, int64_t base, int64_t stride, int64_t vocab) {
    q3_chunk chunk;
    float largest = -INFINITY;
    int nan = 0;
    for (int64_t c = 0; c < vocab && !nan; c += Q3_ROW_CHUNK) {
        const int64_t n = q3_chunk_length(c, vocab);
        largest = chunk_largest(q3_float_row(logits, base + c * stride, stride, n, chunk.f), n, largest, &nan);
    }
    for (int64_t c = 0; c < vocab; c += Q3_ROW_CHUNK) {
        const int64_t n = q3_chunk_length(c, vocab);
        const int64_t first = chunk_first(q3_float_row(logits, base + c * stride, stride, n, chunk.f), n, largest, nan);
        if (first < n) return c + first;
    }
    return 0;  /* not reached: the largest value or the NaN seen is in the row */
}

int q3_argmax(q3_tensor out, q3_tensor logits, void *stream) {
    Q3_ENTER("argmax", q3_check_argmax_call(op, &out, &logits));
    const int64_t batch = logits.shape[0], vocab = logits.shape[1];

#pragma omp parallel for schedule(static) if (q3_parallel(batch * vocab))
    for (int64_t b = 0; b < batch; ++b) {
        ((int64_t *)out.data)[b * out.strides[0]] = row_argmax(&logits, b * logits.strides[0], logits.strides[1], vocab);
    }
    return Q3_OK;
}
