/* Qwen3-MoE router: logits = x @ gate_weight^T (accumulated in double, rounded to x's dtype as
 * F.linear's output would be), p = softmax(logits) in float32, the top_k experts by descending p
 * (ties: lower index first); weights = their p, divided by their float32 sum (taken in that
 * descending order) when norm_topk_prob; weights in x's dtype, ids int64. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

int q3_moe_router(q3_tensor weights, q3_tensor ids, q3_tensor x, q3_tensor gate_weight,
                  int64_t top_k, int norm_topk_prob, void *stream) {
    Q3_ENTER("moe_router", q3_check_moe_router_call(op, &weights, &ids, &x, &gate_weight, top_k));
    const int64_t tokens = x.shape[0], hidden = x.shape[1], experts = gate_weight.shape[0];

    size_t stride;
    /* Per thread: x row [hidden], p [experts], chosen flags [experts], top p [top_k]. */
    float *scratch = q3_scratch_alloc(
        sizeof(float) * (size_t)(hidden + 2 * experts + top_k), &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate router scratch");
    const int dtype = x.dtype;
#pragma omp parallel for schedule(static) if (q3_parallel(tokens * hidden * experts))
    for (int64_t t = 0; t < tokens; ++t) {
        float *row = q3_scratch_for_thread(scratch, stride);
        float *p = row + hidden, *chosen = p + experts, *top = chosen + experts;
        for (int64_t h = 0; h < hidden; ++h) row[h] = q3_load(&x, t * x.strides[0] + h * x.strides[1]);
        float max_logit = -INFINITY;
        for (int64_t e = 0; e < experts; ++e) {
            double acc = 0.0;
            const int64_t base = e * gate_weight.strides[0];
            for (int64_t h = 0; h < hidden; ++h) {
                acc += (double)row[h] * q3_load(&gate_weight, base + h * gate_weight.strides[1]);
            }
            p[e] = q3_round_to(dtype, (float)acc);
            max_logit = fmaxf(max_logit, p[e]);
            chosen[e] = 0.0f;
        }
        double sum = 0.0;
        for (int64_t e = 0; e < experts; ++e) {
            p[e] = expf(p[e] - max_logit);
            sum += p[e];
        }
        const float total = (float)sum;
        for (int64_t e = 0; e < experts; ++e) p[e] /= total;
        float top_sum = 0.0f;
        for (int64_t j = 0; j < top_k; ++j) {
            int64_t best = -1;
            for (int64_t e = 0; e < experts; ++e) {
                if (chosen[e] != 0.0f) continue;
                if (best < 0 || p[e] > p[best]) best = e;
            }
            chosen[best] = 1.0f;
            top[j] = p[best];
            top_sum += p[best];
            ((int64_t *)ids.data)[t * ids.strides[0] + j * ids.strides[1]] = best;
        }
        for (int64_t j = 0; j < top_k; ++j) {
            const float w = norm_topk_prob ? top[j] / top_sum : top[j];
            q3_store(&weights, t * weights.strides[0] + j * weights.strides[1], w);
        }
    }
    free(scratch);
    return Q3_OK;
}
