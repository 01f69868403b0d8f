/* Qwen3-MoE experts: out[t] = sum_j weights[t, j] * down[e] @ (silu(g) * u), e = ids[t, j],
 * g = gate_up[e, 0:I] @ x[t], u = gate_up[e, I:2I] @ x[t]; dot products accumulated in double,
 * the intermediate h and the output sum kept in float32 and written once in x's dtype. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

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

    size_t stride;
    /* Per thread: x row [hidden], output sum [hidden], activation [inter]. */
    float *scratch =
        q3_scratch_alloc(sizeof(float) * (size_t)(2 * hidden + inter), &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate expert scratch");
#pragma omp parallel for schedule(dynamic, 1) if (q3_parallel(tokens * top_k * hidden * inter))
    for (int64_t t = 0; t < tokens; ++t) {
        float *row = q3_scratch_for_thread(scratch, stride);
        float *acc = row + hidden, *act = acc + hidden;
        for (int64_t h = 0; h < hidden; ++h) {
            row[h] = q3_load(&x, t * x.strides[0] + h * x.strides[1]);
            acc[h] = 0.0f;
        }
        for (int64_t j = 0; j < top_k; ++j) {
            const int64_t e = q3_load_index(&ids, t * ids.strides[0] + j * ids.strides[1]);
            const float w = q3_load(&weights, t * weights.strides[0] + j * weights.strides[1]);
            const int64_t gu = e * gate_up.strides[0];
            for (int64_t i = 0; i < inter; ++i) {
                const int64_t g0 = gu + i * gate_up.strides[1];
                const int64_t u0 = gu + (inter + i) * gate_up.strides[1];
                double g = 0.0, u = 0.0;
                for (int64_t h = 0; h < hidden; ++h) {
                    g += (double)row[h] * q3_load(&gate_up, g0 + h * gate_up.strides[2]);
                    u += (double)row[h] * q3_load(&gate_up, u0 + h * gate_up.strides[2]);
                }
                const float gf = (float)g;
                act[i] = gf / (1.0f + expf(-gf)) * (float)u;
            }
            const int64_t d0 = e * down.strides[0];
            for (int64_t h = 0; h < hidden; ++h) {
                const int64_t r0 = d0 + h * down.strides[1];
                double y = 0.0;
                for (int64_t i = 0; i < inter; ++i) {
                    y += (double)act[i] * q3_load(&down, r0 + i * down.strides[2]);
                }
                acc[h] += w * (float)y;
            }
        }
        for (int64_t h = 0; h < hidden; ++h) q3_store(&out, t * out.strides[0] + h * out.strides[1], acc[h]);
    }
    free(scratch);
    return Q3_OK;
}
