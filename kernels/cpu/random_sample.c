/* One token per row of logits [B, V] from an explicit uniform value random[b] in [0, 1):
 * p = softmax(logits / temperature) in float32 (logits widened to float32, divided by
 * (float)temperature, max-subtracted); tokens sorted by descending p, ties by lower index, the first
 * top_k kept (top_k <= 0 or >= V keeps all; otherwise a heap picks those top_k out before they are
 * sorted); then the shortest prefix whose cumulative p reaches top_p * (kept total), the crossing
 * token kept; the pick is the first kept token whose cumulative p exceeds random * (prefix total),
 * else the last kept token. Cumulative sums are accumulated in double, in sorted order. */
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

/* Restores the heap c[0..n) below position i: every parent ranks after (or equals) its children. */
static void sift_down(candidate *c, int64_t n, int64_t i) {
    for (;;) {
        int64_t last = i;
        const int64_t left = 2 * i + 1, right = left + 1;
        if (left < n && by_descending_p(&c[left], &c[last]) > 0) last = left;
        if (right < n && by_descending_p(&c[right], &c[last]) > 0) last = right;
        if (last == i) return;
        const candidate swap = c[i];
        c[i] = c[last];
        c[last] = swap;
        i = last;
    }
}

/* c[0..k) turned into the k first candidates of c[0..n) in by_descending_p's order, unsorted: a heap
 * whose root ranks last among them, each later candidate that ranks before the root replacing it. */
static void keep_first_k(candidate *c, int64_t n, int64_t k) {
    for (int64_t i = k; i-- > 0;) sift_down(c, k, i);
    for (int64_t i = k; i < n; ++i) {
        if (by_descending_p(&c[i], &c[0]) < 0) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    }
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
    const int64_t k = (top_k <= 0 || top_k >= vocab) ? vocab : top_k;
    if (k < vocab) keep_first_k(c, vocab, k);
    qsort(c, (size_t)k, sizeof *c, by_descending_p);
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
