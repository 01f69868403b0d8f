/* One token per row of logits [B, V] from an explicit uniform value random[b] in [0, 1):
 * p = softmax(logits / temperature) in float32 (logits widened to float32, divided by
 * (float)temperature, max-subtracted); tokens sorted by descending p, ties by lower index; the
 * first top_k kept (top_k <= 0 or >= V keeps all); then the shortest prefix whose cumulative p
 * reaches top_p * (kept total), the crossing token kept; the pick is the first kept token whose
 * cumulative p exceeds random * (prefix total), else the last kept token. Cumulative sums are
 * accumulated in double, in sorted order. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

typedef struct {
    float p;
    int64_t index;
} candidate;

static int by_descending_p(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int64_t sample_row(const q3_tensor *logits, int64_t base, int64_t vocab, float temperature,
                          int64_t top_k, double top_p, double random, candidate *c) {
    const int64_t stride = logits->strides[1];
    float max_value = -INFINITY;
    for (int64_t i = 0; i < vocab; ++i) {
        c[i].p = q3_load(logits, base + i * stride) / temperature;
        c[i].index = i;
        max_value = fmaxf(max_value, c[i].p);
    }
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) {
        c[i].p = expf(c[i].p - max_value);
        sum += c[i].p;
    }
    const float total = (float)sum;
    for (int64_t i = 0; i < vocab; ++i) c[i].p /= total;
    /* NaN p appears only when every p is NaN (the sum is NaN), so the order stays total. */
    qsort(c, (size_t)vocab, sizeof *c, by_descending_p);

    const int64_t k = (top_k <= 0 || top_k >= vocab) ? vocab : top_k;
    double kept_total = 0.0;
    for (int64_t i = 0; i < k; ++i) kept_total += c[i].p;
    const double threshold = top_p * kept_total;
    int64_t kept = k;
    double cumulative = 0.0;
    for (int64_t i = 0; i < k; ++i) {
        cumulative += c[i].p;
        if (cumulative >= threshold) {
            kept = i + 1;
            break;
        }
    }
    double prefix_total = 0.0;
    for (int64_t i = 0; i < kept; ++i) prefix_total += c[i].p;
    const double target = random * prefix_total;
    cumulative = 0.0;
    for (int64_t i = 0; i < kept; ++i) {
        cumulative += c[i].p;
        if (cumulative > target) return c[i].index;
    }
    return c[kept - 1].index;
}

int q3_random_sample(q3_tensor out, q3_tensor logits, q3_tensor random, double temperature,
                     int64_t top_k, double top_p, void *stream) {
    Q3_ENTER("random_sample", q3_check_random_sample_call(op, &out, &logits, &random, temperature, top_p));
    const int64_t batch = logits.shape[0], vocab = logits.shape[1];
    for (int64_t b = 0; b < batch; ++b) {
        const float r = ((const float *)random.data)[b * random.strides[0]];
        if (!(r >= 0.0f && r < 1.0f)) {
            return q3_fail(Q3_BAD_VALUE, op, "tensor 'random' holds %g for row %lld, outside [0, 1)",
                           (double)r, (long long)b);
        }
    }

    size_t stride;
    candidate *scratch = q3_scratch_alloc(sizeof(candidate) * (size_t)vocab, &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate sort scratch");
#pragma omp parallel for schedule(dynamic, 1) if (q3_parallel(batch * vocab))
    for (int64_t b = 0; b < batch; ++b) {
        const double r = ((const float *)random.data)[b * random.strides[0]];
        ((int64_t *)out.data)[b * out.strides[0]] =
            sample_row(&logits, b * logits.strides[0], vocab, (float)temperature, top_k, top_p, r,
                       q3_scratch_for_thread(scratch, stride));
    }
    free(scratch);
    return Q3_OK;
}
