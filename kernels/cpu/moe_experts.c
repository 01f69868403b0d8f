/* Qwen3-MoE experts: out[t] = sum_j weights[t, j] * down[e] @ (silu(g) * u), e = ids[t, j],
 * g = gate_up[e, 0:I] @ x[t], u = gate_up[e, I:2I] @ x[t]; dot products accumulated in double (in
 * vector lanes, dot_rows.h), each expert's output y[t, j] rounded to float32, and out[t] summed in
 * float32 over j in order (w * y) and written once in x's dtype. An expert's tokens go four at a time,
 * each weight row (float32 in place when unit-stride, else widened) read once for the four; the tokens go
 * in blocks whose outputs take at most 64 MiB. */
#include <stdlib.h>

#include "common.h"
#include "dot_rows.h"
#include "entry.h"
#include "parallel.h"
#include "row_io.h"
#include "scratch.h"

#define Q3_EXPERT_OUTPUTS (1 << 24) /* floats of expert outputs held at a time (64 MiB) */

/* Row r of expert e of a [E, R, C] weight as floats (q3_float_row). */
static const float *expert_row(const q3_tensor *w, int64_t e, int64_t r, int64_t columns, float *buffer) {
    return q3_float_row(w, e * w->strides[0] + r * w->strides[1], w->strides[2], columns, buffer);
}

/* The expert of pair p = t * top_k + j. */
static int64_t pair_expert(const q3_tensor *ids, int64_t p, int64_t top_k) {
    return q3_load_index(ids, (p / top_k) * ids->strides[0] + (p % top_k) * ids->strides[1]);
}

/* y[pair[p]] = down[e] @ (silu(g) * u) of the x rows of the `count` (<= 4) pairs, each base + pair[p] the
 * flat t * top_k + j of one. */
static void expert_tile(const q3_tensor *x, const q3_tensor *gate_up, const q3_tensor *down, int64_t e,
                        const int64_t *pair, int64_t count, int64_t base, int64_t top_k, float *y, double *rows,
                        double *act, float *buffer) {
    const int64_t hidden = x->shape[1], inter = gate_up->shape[1] / 2;
    for (int64_t p = 0; p < count; ++p) {
        const int64_t t = (base + pair[p]) / top_k;
        q3_double_row(x, t * x->strides[0], x->strides[1], hidden, rows + p * hidden);
    }
    for (int64_t i = 0; i < inter; ++i) {
        double g[Q3_DOT_ROWS], u[Q3_DOT_ROWS];
        q3_dot_rows(rows, hidden, count, expert_row(gate_up, e, i, hidden, buffer), hidden, g);
        q3_dot_rows(rows, hidden, count, expert_row(gate_up, e, inter + i, hidden, buffer), hidden, u);
        for (int64_t p = 0; p < count; ++p) {
            const float gf = (float)g[p];
            act[p * inter + i] = gf / (1.0f + expf(-gf)) * (float)u[p];
        }
    }
    for (int64_t h = 0; h < hidden; ++h) {
        double sum[Q3_DOT_ROWS];
        q3_dot_rows(act, inter, count, expert_row(down, e, h, inter, buffer), inter, sum);
        for (int64_t p = 0; p < count; ++p) y[pair[p] * hidden + h] = (float)sum[p];
    }
}

int q3_moe_experts(q3_tensor out, q3_tensor x, q3_tensor weights, q3_tensor ids, q3_tensor gate_up,
                   q3_tensor down, void *stream) {
    Q3_ENTER("moe_experts", q3_check_moe_experts_call(op, &out, &x, &weights, &ids, &gate_up, &down));
    const int64_t tokens = x.shape[0], hidden = x.shape[1], top_k = weights.shape[1];
    const int64_t experts = gate_up.shape[0], inter = gate_up.shape[1] / 2;
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < top_k; ++j) {
            const int64_t e = q3_load_index(&ids, t * ids.strides[0] + j * ids.strides[1]);
            if (e < 0 || e >= experts) {
                return q3_fail(Q3_BAD_VALUE, op,
                               "tensor 'ids' holds %lld at [%lld, %lld], outside [0, %lld)",
                               (long long)e, (long long)t, (long long)j, (long long)experts);
            }
        }
    }
    /* Tokens a block at a time, so that the expert outputs y take at most Q3_EXPERT_OUTPUTS floats. */
    const int64_t per_token = top_k * hidden > 0 ? top_k * hidden : 1;
    const int64_t block = Q3_EXPERT_OUTPUTS / per_token > 0 ? Q3_EXPERT_OUTPUTS / per_token : 1;
    const int64_t block_tokens = tokens < block ? tokens : block;
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(experts + 1));
    int64_t *next = malloc(sizeof(int64_t) * (size_t)(experts + 1));
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(block_tokens * top_k + 1));
    float *y = malloc(sizeof(float) * (size_t)(block_tokens * per_token + 1));
    size_t stride;
    const int64_t widest = hidden > inter ? hidden : inter;
    /* Per thread: four x rows and four activations in double, one widened weight row. */
    char *scratch = q3_scratch_alloc(sizeof(double) * (size_t)(Q3_DOT_ROWS * (hidden + inter)) +
                                     sizeof(float) * (size_t)widest, &stride);
    if (first == NULL || next == NULL || order == NULL || y == NULL || scratch == NULL) {
        free(first);
        free(next);
        free(order);
        free(y);
        free(scratch);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate expert scratch");
    }
    for (int64_t t0 = 0; t0 < tokens; t0 += block_tokens) {
        const int64_t t1 = tokens - t0 < block_tokens ? tokens : t0 + block_tokens;
        const int64_t base = t0 * top_k, pairs = (t1 - t0) * top_k;
        /* The block's pairs grouped by expert: first[e] .. first[e + 1] in `order`, each group in (t, j) order. */
        memset(first, 0, sizeof(int64_t) * (size_t)(experts + 1));
        for (int64_t p = 0; p < pairs; ++p) first[pair_expert(&ids, base + p, top_k) + 1]++;
        for (int64_t e = 0; e < experts; ++e) first[e + 1] += first[e];
        memcpy(next, first, sizeof(int64_t) * (size_t)experts);
        for (int64_t p = 0; p < pairs; ++p) order[next[pair_expert(&ids, base + p, top_k)]++] = p;

#pragma omp parallel for schedule(dynamic, 1) if (q3_parallel(pairs * hidden * inter))
        for (int64_t e = 0; e < experts; ++e) {
            char *mine = scratch + stride * (size_t)q3_thread_id();
            double *rows = (double *)mine, *act = rows + Q3_DOT_ROWS * hidden;
            float *buffer = (float *)(act + Q3_DOT_ROWS * inter);
            for (int64_t p = first[e]; p < first[e + 1]; p += Q3_DOT_ROWS) {
                const int64_t count = first[e + 1] - p < Q3_DOT_ROWS ? first[e + 1] - p : Q3_DOT_ROWS;
                expert_tile(&x, &gate_up, &down, e, order + p, count, base, top_k, y, rows, act, buffer);
            }
        }

#pragma omp parallel for schedule(static) if (q3_parallel(pairs * hidden))
        for (int64_t t = t0; t < t1; ++t) {
            for (int64_t h = 0; h < hidden; ++h) {
                float acc = 0.0f;
                for (int64_t j = 0; j < top_k; ++j) {
                    const float w = q3_load(&weights, t * weights.strides[0] + j * weights.strides[1]);
                    acc += w * y[((t - t0) * top_k + j) * hidden + h];
                }
                q3_store(&out, t * out.strides[0] + h * out.strides[1], acc);
            }
        }
    }
    free(next);
    free(first);
    free(order);
    free(y);
    free(scratch);
    return Q3_OK;
}
