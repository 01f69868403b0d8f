/* Causal grouped-query attention over one sequence: q [T, Hq, D], k and v [T, Hkv, D];
 * query head h reads kv head h / (Hq / Hkv); token t attends to tokens 0 .. t. */
#include "attention_row.h"
#include "common.h"
#include "scratch.h"

int q3_attention_prefill(q3_tensor out, q3_tensor q, q3_tensor k, q3_tensor v, double scale,
                         void *stream) {
    static const char op[] = "attention_prefill";
    int status;
    q3_clear_error();
    if (stream != NULL) return q3_fail(Q3_BAD_ATTRIBUTE, op, "the CPU library takes no stream");
    if ((status = q3_check_float(op, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_float(op, "k", &k)) != Q3_OK) return status;
    if ((status = q3_check_float(op, "v", &v)) != Q3_OK) return status;
    if ((status = q3_check_float(op, "out", &out)) != Q3_OK) return status;
    if ((status = q3_check_ndim(op, "q", &q, 3)) != Q3_OK) return status;
    if ((status = q3_check_ndim(op, "k", &k, 3)) != Q3_OK) return status;
    if ((status = q3_check_ndim(op, "v", &v, 3)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "k", &k, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "v", &v, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "out", &out, "q", &q)) != Q3_OK) return status;
    const int64_t tokens = q.shape[0], q_heads = q.shape[1], head_dim = q.shape[2];
    const int64_t kv_heads = k.shape[1];
    if (k.shape[0] != tokens || k.shape[2] != head_dim) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k' has shape [%lld, %lld, %lld]; expected [%lld, Hkv, %lld]",
                       (long long)k.shape[0], (long long)k.shape[1], (long long)k.shape[2],
                       (long long)tokens, (long long)head_dim);
    }
    if ((status = q3_check_same_shape(op, "v", &v, "k", &k)) != Q3_OK) return status;
    if (kv_heads == 0 ? q_heads != 0 : q_heads % kv_heads != 0) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'q' has %lld heads, not a multiple of k's %lld",
                       (long long)q_heads, (long long)kv_heads);
    }
    if ((status = q3_check_same_shape(op, "out", &out, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_writable(op, "out", &out)) != Q3_OK) return status;
    if (!(scale > 0.0) || !isfinite(scale)) {
        return q3_fail(Q3_BAD_ATTRIBUTE, op, "scale must be finite and > 0, got %g", scale);
    }

    size_t stride;
    float *scratch = q3_scratch_alloc(sizeof(float) * (size_t)(2 * head_dim + tokens), &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate score scratch");
    const int64_t group = kv_heads == 0 ? 1 : q_heads / kv_heads;
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
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
