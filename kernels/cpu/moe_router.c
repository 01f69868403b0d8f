/* Qwen3-MoE router: logits = x @ gate_weight^T (accumulated in double, rounded to x's dtype as
 * F.linear's output would be), p = softmax(logits) in float32, the top_k experts by descending p
 * (ties: lower index first); weights = their p, divided by their float32 sum (taken in that
 * descending order) when norm_topk_prob; weights in x's dtype, ids int64. The logits go four tokens
 * at a time, each gate row read once for the four (dot_rows.h). */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "dot_rows.h"
#include "parallel.h"
#include "row_io.h"
#include "scratch.h"

/* logits[t, e] for the `count` (<= 4) tokens from `first`, rounded to x's dtype. */
static void logit_tile(const q3_tensor *x, const q3_tensor *gate_weight, int64_t first, int64_t count,
                       float *logits, double *rows, float *buffer) {
    const int64_t hidden = x->shape[1], experts = gate_weight->shape[0];
    for (int64_t r = 0; r < count; ++r) {
        q3_double_row(x, (first + r) * x->strides[0], x->strides[1], hidden, rows + r * hidden);
    }
    for (int64_t e = 0; e < experts; ++e) {
        const float *w =
            q3_float_row(gate_weight, e * gate_weight->strides[0], gate_weight->strides[1], hidden, buffer);
        double acc[Q3_DOT_ROWS];
        q3_dot_rows(rows, hidden, count, w, hidden, acc);
        for (int64_t r = 0; r < count; ++r) {
            logits[(first + r) * experts + e] = q3_round_to(x->dtype, (float)acc[r]);
        }
    }
}

/* This thread's scratch: four x rows in double, then floats: a widened gate row [hidden], chosen flags
 * [experts], the top p [top_k]. */
static double *thread_rows(char *scratch, size_t stride) { return (double *)(scratch + stride * (size_t)q3_thread_id()); }

static float *thread_floats(char *scratch, size_t stride, int64_t hidden) {
    return (float *)(thread_rows(scratch, stride) + Q3_DOT_ROWS * hidden);
}

int q3_moe_router(q3_tensor weights, q3_tensor ids, q3_tensor x, q3_tensor gate_weight,
                  int64_t top_k, int norm_topk_prob, void *stream) {
    Q3_ENTER("moe_router", q3_check_moe_router_call(op, &weights, &ids, &x, &gate_weight, top_k));
    const int64_t tokens = x.shape[0], hidden = x.shape[1], experts = gate_weight.shape[0];

    size_t stride;
    char *scratch = q3_scratch_alloc(sizeof(double) * (size_t)(Q3_DOT_ROWS * hidden) +
                                     sizeof(float) * (size_t)(hidden + experts + top_k), &stride);
    float *logits = malloc(sizeof(float) * (size_t)(tokens * experts + 1));
    if (scratch == NULL || logits == NULL) {
        free(scratch);
        free(logits);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate router scratch");
    }
    const int64_t tiles = (tokens + Q3_DOT_ROWS - 1) / Q3_DOT_ROWS;
#pragma omp parallel for schedule(static) if (q3_parallel(tokens * hidden * experts))
    for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t first = tile * Q3_DOT_ROWS;
        const int64_t count = tokens - first < Q3_DOT_ROWS ? tokens - first : Q3_DOT_ROWS;
        logit_tile(&x, &gate_weight, first, count, logits, thread_rows(scratch, stride),
                   thread_floats(scratch, stride, hidden));
    }
#pragma omp parallel for schedule(static) if (q3_parallel(tokens * experts * top_k))
    for (int64_t t = 0; t < tokens; ++t) {
        float *p = logits + t * experts;
        float *chosen = thread_floats(scratch, stride, hidden) + hidden;
        float *top = chosen + experts;
        float max_logit = -INFINITY;
        for (int64_t e = 0; e < experts; ++e) {
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
    free(logits);
    return Q3_OK;
}
