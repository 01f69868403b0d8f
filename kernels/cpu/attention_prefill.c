/* Causal grouped-query attention over one sequence: q [T, Hq, D], k and v [T, Hkv, D];
 * query head h reads kv head h / (Hq / Hkv); token t attends to tokens 0 .. t. */
#include "attention_row.h"
#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

int q3_attention_prefill(q3_tensor out, q3_tensor q, q3_tensor k, q3_tensor v, double scale,
                         void *stream) {
    Q3_ENTER("attention_prefill", q3_check_attention_prefill_call(op, &out, &q, &k, &v, scale));
    const int64_t tokens = q.shape[0], q_heads = q.shape[1], head_dim = q.shape[2];
    const int64_t kv_heads = k.shape[1];

    size_t stride;
    float *scratch = q3_scratch_alloc(sizeof(float) * (size_t)(2 * head_dim + tokens), &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate score scratch");
    const int64_t group = kv_heads == 0 ? 1 : q_heads / kv_heads;
#pragma omp parallel for collapse(2) schedule(dynamic, 4) \
    if (q3_parallel(tokens * tokens * q_heads * head_dim))
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < q_heads; ++h) {
            const int64_t kv = h / group;
            const q3_kv_source src = {
                .k = &k, .v = &v,
                .k_base = kv * k.strides[1], .v_base = kv * v.strides[1],
                .k_pos = k.strides[0], .v_pos = v.strides[0],
                .k_dim = k.strides[2], .v_dim = v.strides[2],
                .table = NULL,
            };
            q3_attention_row(&out, t * out.strides[0] + h * out.strides[1], out.strides[2], &q,
                             t * q.strides[0] + h * q.strides[1], q.strides[2], head_dim, &src,
                             t + 1, (float)scale, q3_scratch_for_thread(scratch, stride));
        }
    }
    free(scratch);
    return Q3_OK;
}
