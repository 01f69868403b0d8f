/* Host-side argument checks shared by the CPU and the CUDA library (see contracts.h). */
#include <math.h>

#include "contracts.h"

#define Q3_TRY(call)                      \
    do {                                  \
        const int q3_try_status = (call); \
        if (q3_try_status != Q3_OK) return q3_try_status; \
    } while (0)

int q3_check_linear_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight,
                         const q3_tensor *bias) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "weight", weight));
    Q3_TRY(q3_check_float(op, "out", out));
    const int has_bias = bias->data != NULL;
    if (has_bias) Q3_TRY(q3_check_float(op, "bias", bias));
    if (x->ndim < 1) return q3_fail(Q3_BAD_SHAPE, op, "tensor 'x' must have at least one dim");
    Q3_TRY(q3_check_ndim(op, "weight", weight, 2));
    Q3_TRY(q3_check_same_dtype(op, "weight", weight, "x", x));
    Q3_TRY(q3_check_same_dtype(op, "out", out, "x", x));
    const int64_t in_features = x->shape[x->ndim - 1];
    const int64_t out_features = weight->shape[0];
    if (weight->shape[1] != in_features) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'weight' has %lld input features; x has %lld",
                       (long long)weight->shape[1], (long long)in_features);
    }
    if (has_bias) {
        Q3_TRY(q3_check_same_dtype(op, "bias", bias, "x", x));
        if (bias->ndim != 1 || bias->shape[0] != out_features) {
            return q3_fail(Q3_BAD_SHAPE, op, "tensor 'bias' must have shape [%lld]", (long long)out_features);
        }
    }
    int shape_ok = out->ndim == x->ndim && out->shape[out->ndim - 1] == out_features;
    for (int d = 0; shape_ok && d + 1 < x->ndim; ++d) shape_ok = out->shape[d] == x->shape[d];
    if (!shape_ok) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'out' must have shape x.shape[:-1] + [%lld]",
                       (long long)out_features);
    }
    return q3_check_writable(op, "out", out);
}

static int check_scale(const char *op, double scale) {
    if (!(scale > 0.0) || !isfinite(scale)) {
        return q3_fail(Q3_BAD_ATTRIBUTE, op, "scale must be finite and > 0, got %g", scale);
    }
    return Q3_OK;
}

int q3_check_attention_prefill_call(const char *op, const q3_tensor *out, const q3_tensor *q, const q3_tensor *k,
                                    const q3_tensor *v, double scale) {
    Q3_TRY(q3_check_float(op, "q", q));
    Q3_TRY(q3_check_float(op, "k", k));
    Q3_TRY(q3_check_float(op, "v", v));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(q3_check_ndim(op, "q", q, 3));
    Q3_TRY(q3_check_ndim(op, "k", k, 3));
    Q3_TRY(q3_check_ndim(op, "v", v, 3));
    Q3_TRY(q3_check_same_dtype(op, "k", k, "q", q));
    Q3_TRY(q3_check_same_dtype(op, "v", v, "q", q));
    Q3_TRY(q3_check_same_dtype(op, "out", out, "q", q));
    const int64_t tokens = q->shape[0], q_heads = q->shape[1], head_dim = q->shape[2];
    const int64_t kv_heads = k->shape[1];
    if (k->shape[0] != tokens || k->shape[2] != head_dim) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k' has shape [%lld, %lld, %lld]; expected [%lld, Hkv, %lld]",
                       (long long)k->shape[0], (long long)k->shape[1], (long long)k->shape[2],
                       (long long)tokens, (long long)head_dim);
    }
    Q3_TRY(q3_check_same_shape(op, "v", v, "k", k));
    if (kv_heads == 0 ? q_heads != 0 : q_heads % kv_heads != 0) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'q' has %lld heads, not a multiple of k's %lld",
                       (long long)q_heads, (long long)kv_heads);
    }
    Q3_TRY(q3_check_same_shape(op, "out", out, "q", q));
    Q3_TRY(q3_check_writable(op, "out", out));
    return check_scale(op, scale);
}

int q3_check_attention_decode_call(const char *op, const q3_tensor *out, const q3_tensor *q,
                                   const q3_tensor *k_cache, const q3_tensor *v_cache, const q3_tensor *seq_lens,
                                   double scale) {
    Q3_TRY(q3_check_float(op, "q", q));
    Q3_TRY(q3_check_float(op, "k_cache", k_cache));
    Q3_TRY(q3_check_float(op, "v_cache", v_cache));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(q3_check_index(op, "seq_lens", seq_lens));
    Q3_TRY(q3_check_ndim(op, "q", q, 4));
    Q3_TRY(q3_check_ndim(op, "k_cache", k_cache, 4));
    Q3_TRY(q3_check_ndim(op, "v_cache", v_cache, 4));
    Q3_TRY(q3_check_ndim(op, "seq_lens", seq_lens, 1));
    Q3_TRY(q3_check_same_dtype(op, "k_cache", k_cache, "q", q));
    Q3_TRY(q3_check_same_dtype(op, "v_cache", v_cache, "q", q));
    Q3_TRY(q3_check_same_dtype(op, "out", out, "q", q));
    Q3_TRY(q3_check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache));
    const int64_t q_heads = q->shape[2], head_dim = q->shape[3], kv_heads = k_cache->shape[2];
    if (k_cache->shape[3] != head_dim) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k_cache' has head_dim %lld; q has %lld",
                       (long long)k_cache->shape[3], (long long)head_dim);
    }
    if (kv_heads == 0 ? q_heads != 0 : q_heads % kv_heads != 0) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'q' has %lld heads, not a multiple of k_cache's %lld",
                       (long long)q_heads, (long long)kv_heads);
    }
    if (seq_lens->shape[0] != q->shape[0]) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'seq_lens' has %lld entries for %lld requests",
                       (long long)seq_lens->shape[0], (long long)q->shape[0]);
    }
    Q3_TRY(q3_check_same_shape(op, "out", out, "q", q));
    Q3_TRY(q3_check_writable(op, "out", out));
    return check_scale(op, scale);
}

int q3_check_moe_router_call(const char *op, const q3_tensor *weights, const q3_tensor *ids, const q3_tensor *x,
                             const q3_tensor *gate_weight, int64_t top_k) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "gate_weight", gate_weight));
    Q3_TRY(q3_check_float(op, "weights", weights));
    Q3_TRY(q3_check_tensor(op, "ids", ids));
    if (ids->dtype != Q3_I64) {
        return q3_fail(Q3_BAD_DTYPE, op, "tensor 'ids' has dtype %s; expected int64", q3_dtype_name(ids->dtype));
    }
    Q3_TRY(q3_check_same_dtype(op, "gate_weight", gate_weight, "x", x));
    Q3_TRY(q3_check_same_dtype(op, "weights", weights, "x", x));
    Q3_TRY(q3_check_ndim(op, "x", x, 2));
    Q3_TRY(q3_check_ndim(op, "gate_weight", gate_weight, 2));
    Q3_TRY(q3_check_ndim(op, "weights", weights, 2));
    Q3_TRY(q3_check_ndim(op, "ids", ids, 2));
    const int64_t tokens = x->shape[0], hidden = x->shape[1], experts = gate_weight->shape[0];
    if (gate_weight->shape[1] != hidden) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'gate_weight' has %lld input features; x has %lld",
                       (long long)gate_weight->shape[1], (long long)hidden);
    }
    if (top_k < 1 || top_k > experts) {
        return q3_fail(Q3_BAD_ATTRIBUTE, op, "top_k must be in [1, %lld], got %lld", (long long)experts,
                       (long long)top_k);
    }
    if (weights->shape[0] != tokens || weights->shape[1] != top_k) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'weights' has shape [%lld, %lld]; expected [%lld, %lld]",
                       (long long)weights->shape[0], (long long)weights->shape[1], (long long)tokens,
                       (long long)top_k);
    }
    Q3_TRY(q3_check_same_shape(op, "ids", ids, "weights", weights));
    Q3_TRY(q3_check_writable(op, "weights", weights));
    return q3_check_writable(op, "ids", ids);
}

int q3_check_moe_experts_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weights,
                              const q3_tensor *ids, const q3_tensor *gate_up, const q3_tensor *down) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "weights", weights));
    Q3_TRY(q3_check_float(op, "gate_up", gate_up));
    Q3_TRY(q3_check_float(op, "down", down));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(q3_check_index(op, "ids", ids));
    Q3_TRY(q3_check_same_dtype(op, "weights", weights, "x", x));
    Q3_TRY(q3_check_same_dtype(op, "gate_up", gate_up, "x", x));
    Q3_TRY(q3_check_same_dtype(op, "down", down, "x", x));
    Q3_TRY(q3_check_same_dtype(op, "out", out, "x", x));
    Q3_TRY(q3_check_ndim(op, "x", x, 2));
    Q3_TRY(q3_check_ndim(op, "weights", weights, 2));
    Q3_TRY(q3_check_ndim(op, "ids", ids, 2));
    Q3_TRY(q3_check_ndim(op, "gate_up", gate_up, 3));
    Q3_TRY(q3_check_ndim(op, "down", down, 3));
    const int64_t tokens = x->shape[0], hidden = x->shape[1];
    const int64_t experts = gate_up->shape[0], inter = gate_up->shape[1] / 2;
    if (weights->shape[0] != tokens) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'weights' has %lld rows for %lld tokens",
                       (long long)weights->shape[0], (long long)tokens);
    }
    Q3_TRY(q3_check_same_shape(op, "ids", ids, "weights", weights));
    if (gate_up->shape[1] % 2 != 0 || gate_up->shape[2] != hidden) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'gate_up' has shape [%lld, %lld, %lld]; expected [E, 2I, %lld]",
                       (long long)gate_up->shape[0], (long long)gate_up->shape[1], (long long)gate_up->shape[2],
                       (long long)hidden);
    }
    if (down->shape[0] != experts || down->shape[1] != hidden || down->shape[2] != inter) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'down' has shape [%lld, %lld, %lld]; expected [%lld, %lld, %lld]",
                       (long long)down->shape[0], (long long)down->shape[1], (long long)down->shape[2],
                       (long long)experts, (long long)hidden, (long long)inter);
    }
    Q3_TRY(q3_check_same_shape(op, "out", out, "x", x));
    return q3_check_writable(op, "out", out);
}
