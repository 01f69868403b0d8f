/* out[b] = the first index of the largest value of logits[b, :]; NaN counts as the largest
 * (as torch.argmax), the first NaN wins. */
#include "common.h"
#include "entry.h"
#include "parallel.h"

int q3_argmax(q3_tensor out, q3_tensor logits, void *stream) {
    Q3_ENTER("argmax", q3_check_argmax_call(op, &out, &logits));
    const int64_t batch = logits.shape[0], vocab = logits.shape[1];

#pragma omp parallel for schedule(static) if (q3_parallel(batch * vocab))
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t base = b * logits.strides[0];
        int64_t best = 0;
        float best_value = q3_load(&logits, base);
        for (int64_t i = 1; i < vocab && !isnan(best_value); ++i) {
            const float value = q3_load(&logits, base + i * logits.strides[1]);
            if (isnan(value) || value > best_value) {
                best = i;
                best_value = value;
            }
        }
        ((int64_t *)out.data)[b * out.strides[0]] = best;
    }
    return Q3_OK;
}
