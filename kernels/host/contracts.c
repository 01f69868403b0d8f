/* Host-side argument checks shared by the CPU and the CUDA library (see contracts.h). */
#include <math.h>
#include <stddef.h>

#include "entry.h"

#define Q3_TRY(call)                      \
    do {                                  \
        const int q3_try_status = (call); \
        if (q3_try_status != Q3_OK) return q3_try_status; \
    } while (0)

/* Ends a whole-call check: no output meets another tensor (q3_check_apart), then the library's
 * check of where the call's tensors live (entry.h), in the order given as {"name", tensor, READ}
 * or {"name", tensor, WRITTEN}. */
#define READ 0
#define WRITTEN 1
#define RETURN_MEMORY_CHECK(op, ...)                                                 \
    do {                                                                             \
        const q3_named_tensor named[] = {__VA_ARGS__};                               \
        const int count = (int)(sizeof named / sizeof named[0]);                     \
        Q3_TRY(q3_check_apart(op, named, count));                                    \
        return q3_check_memory(op, named, count);                                    \
    } while (0)

static int check_not_scalar(const char *op, const char *name, const q3_tensor *t) {
    if (t->ndim < 1) return q3_fail(Q3_BAD_SHAPE, op, "tensor '%s' must have at least one dim", name);
    return Q3_OK;
}

static int check_dtype_is(const char *op, const char *name, const q3_tensor *t, int dtype) {
    if (t->dtype != dtype) {
        return q3_fail(Q3_BAD_DTYPE, op, "tensor '%s' has dtype %s; expected %s", name, q3_dtype_name(t->dtype),
                       q3_dtype_name(dtype));
    }
    return Q3_OK;
}

/* The dtype, then the shape, of `like`. */
static int check_like(const char *op, const char *name, const q3_tensor *t, const char *like_name,
                      const q3_tensor *like) {
    Q3_TRY(q3_check_same_dtype(op, name, t, like_name, like));
    return q3_check_same_shape(op, name, t, like_name, like);
}

/* A 1-D tensor of `count` entries, one for each of `what`. */
static int check_entries(const char *op, const char *name, const q3_tensor *t, int64_t count, const char *what) {
    if (t->shape[0] != count) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor '%s' has %lld entries for %lld %s", name, (long long)t->shape[0],
                       (long long)count, what);
    }
    return Q3_OK;
}

int q3_check_embedding_call(const char *op, const q3_tensor *out, const q3_tensor *ids, const q3_tensor *weight) {
    Q3_TRY(q3_check_index(op, "ids", ids));
    Q3_TRY(q3_check_float(op, "weight", weight));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(q3_check_ndim(op, "weight", weight, 2));
    Q3_TRY(q3_check_same_dtype(op, "out", out, "weight", weight));
    if (ids->ndim + 1 > Q3_MAX_DIMS) return q3_fail(Q3_BAD_SHAPE, op, "tensor 'ids' has too many dims");
    int shape_ok = out->ndim == ids->ndim + 1 && out->shape[ids->ndim] == weight->shape[1];
    for (int d = 0; shape_ok && d < ids->ndim; ++d) shape_ok = out->shape[d] == ids->shape[d];
    if (!shape_ok) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'out' must have shape ids.shape + [%lld]",
                       (long long)weight->shape[1]);
    }
    Q3_TRY(q3_check_writable(op, "out", out));
    RETURN_MEMORY_CHECK(op, {"ids", ids, READ}, {"weight", weight, READ}, {"out", out, WRITTEN});
}

/* A 1-D weight as long as x's last dim, of x's dtype or float32. */
static int check_norm_weight(const char *op, const q3_tensor *weight, const q3_tensor *x) {
    Q3_TRY(q3_check_ndim(op, "weight", weight, 1));
    if (weight->shape[0] != x->shape[x->ndim - 1]) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'weight' has %lld elements; x's last dim is %lld",
                       (long long)weight->shape[0], (long long)x->shape[x->ndim - 1]);
    }
    return q3_check_weight_dtype(op, "weight", weight, x);
}

static int check_eps(const char *op, double eps) {
    if (!(eps >= 0.0)) return q3_fail(Q3_BAD_ATTRIBUTE, op, "eps must be >= 0, got %g", eps);
    return Q3_OK;
}

int q3_check_rms_norm_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight,
                           double eps) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "weight", weight));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(check_not_scalar(op, "x", x));
    Q3_TRY(check_norm_weight(op, weight, x));
    Q3_TRY(check_like(op, "out", out, "x", x));
    Q3_TRY(q3_check_writable(op, "out", out));
    Q3_TRY(check_eps(op, eps));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"weight", weight, READ}, {"out", out, WRITTEN});
}

int q3_check_add_rms_norm_call(const char *op, const q3_tensor *out, const q3_tensor *sum, const q3_tensor *x,
                               const q3_tensor *residual, const q3_tensor *weight, double eps) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "residual", residual));
    Q3_TRY(q3_check_float(op, "weight", weight));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(q3_check_float(op, "sum", sum));
    Q3_TRY(check_not_scalar(op, "x", x));
    Q3_TRY(check_like(op, "residual", residual, "x", x));
    Q3_TRY(check_norm_weight(op, weight, x));
    Q3_TRY(check_like(op, "out", out, "x", x));
    Q3_TRY(check_like(op, "sum", sum, "x", x));
    Q3_TRY(q3_check_writable(op, "out", out));
    Q3_TRY(q3_check_writable(op, "sum", sum));
    Q3_TRY(check_eps(op, eps));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"residual", residual, READ}, {"weight", weight, READ},
                        {"out", out, WRITTEN}, {"sum", sum, WRITTEN});
}

int q3_check_linear_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight,
                         const q3_tensor *bias) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "weight", weight));
    Q3_TRY(q3_check_float(op, "out", out));
    const int has_bias = bias->data != NULL;
    if (has_bias) Q3_TRY(q3_check_float(op, "bias", bias));
    Q3_TRY(check_not_scalar(op, "x", x));
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
    Q3_TRY(q3_check_writable(op, "out", out));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"weight", weight, READ}, {"bias", bias, READ}, {"out", out, WRITTEN});
}

int q3_check_rope_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *positions,
                       double theta, int layout) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(q3_check_index(op, "positions", positions));
    Q3_TRY(q3_check_ndim(op, "x", x, 3));
    Q3_TRY(q3_check_ndim(op, "positions", positions, 1));
    Q3_TRY(check_like(op, "out", out, "x", x));
    Q3_TRY(check_entries(op, "positions", positions, x->shape[0], "tokens"));
    if (x->shape[2] % 2 != 0) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'x' has odd head_dim %lld", (long long)x->shape[2]);
    }
    if (layout != Q3_ROPE_NEOX && layout != Q3_ROPE_GPTJ) {
        return q3_fail(Q3_BAD_ATTRIBUTE, op, "unknown layout %d", layout);
    }
    if (!(theta > 0.0)) return q3_fail(Q3_BAD_ATTRIBUTE, op, "theta must be > 0, got %g", theta);
    Q3_TRY(q3_check_writable(op, "out", out));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"out", out, WRITTEN}, {"positions", positions, READ});
}

int q3_check_swiglu_call(const char *op, const q3_tensor *out, const q3_tensor *gate, const q3_tensor *up) {
    Q3_TRY(q3_check_float(op, "gate", gate));
    Q3_TRY(q3_check_float(op, "up", up));
    Q3_TRY(q3_check_float(op, "out", out));
    Q3_TRY(check_not_scalar(op, "gate", gate));
    Q3_TRY(check_like(op, "up", up, "gate", gate));
    Q3_TRY(check_like(op, "out", out, "gate", gate));
    Q3_TRY(q3_check_writable(op, "out", out));
    RETURN_MEMORY_CHECK(op, {"gate", gate, READ}, {"up", up, READ}, {"out", out, WRITTEN});
}

static int check_softmax(const char *op, const q3_tensor *out, const q3_tensor *x, int min_rank) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "out", out));
    if (x->ndim < min_rank) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'x' has rank %d; expected at least %d", x->ndim, min_rank);
    }
    Q3_TRY(check_like(op, "out", out, "x", x));
    return q3_check_writable(op, "out", out);
}

int q3_check_softmax_call(const char *op, const q3_tensor *out, const q3_tensor *x) {
    Q3_TRY(check_softmax(op, out, x, 1));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"out", out, WRITTEN});
}

int q3_check_causal_softmax_call(const char *op, const q3_tensor *out, const q3_tensor *x) {
    Q3_TRY(check_softmax(op, out, x, 2));
    const int64_t q_len = x->shape[x->ndim - 2], k_len = x->shape[x->ndim - 1];
    if (q_len > k_len) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'x' has q_len %lld > k_len %lld", (long long)q_len,
                       (long long)k_len);
    }
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"out", out, WRITTEN});
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
    Q3_TRY(check_scale(op, scale));
    RETURN_MEMORY_CHECK(op, {"q", q, READ}, {"k", k, READ}, {"v", v, READ}, {"out", out, WRITTEN});
}

/* What both decode variants check: dtypes, ranks, q/out/cache shapes, seq_lens' length, scale. */
static int check_decode_call(const char *op, const q3_tensor *out, const q3_tensor *q, const q3_tensor *k_cache,
                             const q3_tensor *v_cache, const q3_tensor *seq_lens, double scale) {
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
    Q3_TRY(check_entries(op, "seq_lens", seq_lens, q->shape[0], "requests"));
    Q3_TRY(q3_check_same_shape(op, "out", out, "q", q));
    Q3_TRY(q3_check_writable(op, "out", out));
    return check_scale(op, scale);
}

int q3_check_attention_decode_call(const char *op, const q3_tensor *out, const q3_tensor *q,
                                   const q3_tensor *k_cache, const q3_tensor *v_cache, const q3_tensor *seq_lens,
                                   double scale) {
    Q3_TRY(check_decode_call(op, out, q, k_cache, v_cache, seq_lens, scale));
    if (k_cache->shape[0] != q->shape[0]) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k_cache' has %lld requests; q has %lld",
                       (long long)k_cache->shape[0], (long long)q->shape[0]);
    }
    RETURN_MEMORY_CHECK(op, {"q", q, READ}, {"k_cache", k_cache, READ}, {"v_cache", v_cache, READ},
                        {"out", out, WRITTEN}, {"seq_lens", seq_lens, READ});
}

int q3_check_attention_decode_paged_call(const char *op, const q3_tensor *out, const q3_tensor *q,
                                         const q3_tensor *k_cache, const q3_tensor *v_cache,
                                         const q3_tensor *block_table, const q3_tensor *seq_lens, double scale) {
    Q3_TRY(check_decode_call(op, out, q, k_cache, v_cache, seq_lens, scale));
    Q3_TRY(q3_check_index(op, "block_table", block_table));
    Q3_TRY(q3_check_ndim(op, "block_table", block_table, 2));
    if (block_table->shape[0] != q->shape[0]) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'block_table' has %lld rows for %lld requests",
                       (long long)block_table->shape[0], (long long)q->shape[0]);
    }
    const int64_t block_size = k_cache->shape[1];
    if (block_size < 1) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k_cache' has block_size %lld; expected >= 1",
                       (long long)block_size);
    }
    if (block_table->shape[1] > INT64_MAX / block_size) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'block_table' has too many blocks per request");
    }
    RETURN_MEMORY_CHECK(op, {"q", q, READ}, {"k_cache", k_cache, READ}, {"v_cache", v_cache, READ},
                        {"out", out, WRITTEN}, {"seq_lens", seq_lens, READ}, {"block_table", block_table, READ});
}

/* Float dtypes, one dtype, writable caches of one shape, k and v of one shape. */
static int check_kv_tensors(const char *op, const q3_tensor *k_cache, const q3_tensor *v_cache, const q3_tensor *k,
                            const q3_tensor *v, const q3_tensor *index, const char *index_name, int kv_rank) {
    Q3_TRY(q3_check_float(op, "k_cache", k_cache));
    Q3_TRY(q3_check_float(op, "v_cache", v_cache));
    Q3_TRY(q3_check_float(op, "k", k));
    Q3_TRY(q3_check_float(op, "v", v));
    Q3_TRY(q3_check_index(op, index_name, index));
    Q3_TRY(q3_check_ndim(op, "k_cache", k_cache, 4));
    Q3_TRY(q3_check_ndim(op, "v_cache", v_cache, 4));
    Q3_TRY(q3_check_ndim(op, "k", k, kv_rank));
    Q3_TRY(q3_check_ndim(op, "v", v, kv_rank));
    Q3_TRY(q3_check_same_dtype(op, "v_cache", v_cache, "k_cache", k_cache));
    Q3_TRY(q3_check_same_dtype(op, "k", k, "k_cache", k_cache));
    Q3_TRY(q3_check_same_dtype(op, "v", v, "k_cache", k_cache));
    Q3_TRY(q3_check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache));
    Q3_TRY(q3_check_same_shape(op, "v", v, "k", k));
    /* The trailing [Hkv, D] of k must match the cache's. */
    if (k->shape[kv_rank - 2] != k_cache->shape[2] || k->shape[kv_rank - 1] != k_cache->shape[3]) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k' has [Hkv, D] = [%lld, %lld]; k_cache has [%lld, %lld]",
                       (long long)k->shape[kv_rank - 2], (long long)k->shape[kv_rank - 1],
                       (long long)k_cache->shape[2], (long long)k_cache->shape[3]);
    }
    Q3_TRY(q3_check_writable(op, "k_cache", k_cache));
    return q3_check_writable(op, "v_cache", v_cache);
}

int q3_check_kv_cache_write_call(const char *op, const q3_tensor *k_cache, const q3_tensor *v_cache,
                                 const q3_tensor *k, const q3_tensor *v, const q3_tensor *positions) {
    Q3_TRY(check_kv_tensors(op, k_cache, v_cache, k, v, positions, "positions", 4));
    Q3_TRY(q3_check_ndim(op, "positions", positions, 2));
    const int64_t batch = k->shape[0], new_tokens = k->shape[1];
    if (k_cache->shape[0] != batch) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k_cache' has %lld requests; k has %lld",
                       (long long)k_cache->shape[0], (long long)batch);
    }
    if (positions->shape[0] != batch || positions->shape[1] != new_tokens) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'positions' has shape [%lld, %lld]; expected [%lld, %lld]",
                       (long long)positions->shape[0], (long long)positions->shape[1], (long long)batch,
                       (long long)new_tokens);
    }
    RETURN_MEMORY_CHECK(op, {"k_cache", k_cache, WRITTEN}, {"v_cache", v_cache, WRITTEN}, {"k", k, READ},
                        {"v", v, READ}, {"positions", positions, READ});
}

int q3_check_kv_cache_write_paged_call(const char *op, const q3_tensor *k_cache, const q3_tensor *v_cache,
                                       const q3_tensor *k, const q3_tensor *v, const q3_tensor *slots) {
    Q3_TRY(check_kv_tensors(op, k_cache, v_cache, k, v, slots, "slots", 3));
    Q3_TRY(q3_check_ndim(op, "slots", slots, 1));
    Q3_TRY(check_entries(op, "slots", slots, k->shape[0], "tokens"));
    const int64_t num_blocks = k_cache->shape[0], block_size = k_cache->shape[1];
    if (block_size != 0 && num_blocks > INT64_MAX / block_size) {
        return q3_fail(Q3_BAD_SHAPE, op, "tensor 'k_cache' has too many slots");
    }
    RETURN_MEMORY_CHECK(op, {"k_cache", k_cache, WRITTEN}, {"v_cache", v_cache, WRITTEN}, {"k", k, READ},
                        {"v", v, READ}, {"slots", slots, READ});
}

int q3_check_argmax_call(const char *op, const q3_tensor *out, const q3_tensor *logits) {
    Q3_TRY(q3_check_float(op, "logits", logits));
    Q3_TRY(q3_check_tensor(op, "out", out));
    Q3_TRY(check_dtype_is(op, "out", out, Q3_I64));
    Q3_TRY(q3_check_ndim(op, "logits", logits, 2));
    Q3_TRY(q3_check_ndim(op, "out", out, 1));
    if (logits->shape[1] < 1) return q3_fail(Q3_BAD_SHAPE, op, "tensor 'logits' has an empty vocabulary");
    Q3_TRY(check_entries(op, "out", out, logits->shape[0], "rows"));
    Q3_TRY(q3_check_writable(op, "out", out));
    RETURN_MEMORY_CHECK(op, {"logits", logits, READ}, {"out", out, WRITTEN});
}

/* temperature must also stay finite and > 0 once rounded to float32, the precision it is used in. */
static int check_sampling(const char *op, double temperature, double top_p) {
    const float temperature_f = (float)temperature;
    if (!(temperature > 0.0) || !isfinite(temperature_f) || !(temperature_f > 0.0f)) {
        return q3_fail(Q3_BAD_ATTRIBUTE, op, "temperature must be finite and > 0, got %g", temperature);
    }
    if (!(top_p > 0.0 && top_p <= 1.0)) {
        return q3_fail(Q3_BAD_ATTRIBUTE, op, "top_p must be in (0, 1], got %g", top_p);
    }
    return Q3_OK;
}

int q3_check_random_sample_call(const char *op, const q3_tensor *out, const q3_tensor *logits,
                                const q3_tensor *random, double temperature, double top_p) {
    Q3_TRY(q3_check_float(op, "logits", logits));
    Q3_TRY(q3_check_tensor(op, "random", random));
    Q3_TRY(q3_check_tensor(op, "out", out));
    Q3_TRY(check_dtype_is(op, "random", random, Q3_F32));
    Q3_TRY(check_dtype_is(op, "out", out, Q3_I64));
    Q3_TRY(q3_check_ndim(op, "logits", logits, 2));
    Q3_TRY(q3_check_ndim(op, "random", random, 1));
    Q3_TRY(q3_check_ndim(op, "out", out, 1));
    if (logits->shape[1] < 1) return q3_fail(Q3_BAD_SHAPE, op, "tensor 'logits' has an empty vocabulary");
    Q3_TRY(check_entries(op, "random", random, logits->shape[0], "rows"));
    Q3_TRY(check_entries(op, "out", out, logits->shape[0], "rows"));
    Q3_TRY(q3_check_writable(op, "out", out));
    Q3_TRY(check_sampling(op, temperature, top_p));
    RETURN_MEMORY_CHECK(op, {"logits", logits, READ}, {"random", random, READ}, {"out", out, WRITTEN});
}

int q3_check_moe_router_call(const char *op, const q3_tensor *weights, const q3_tensor *ids, const q3_tensor *x,
                             const q3_tensor *gate_weight, int64_t top_k) {
    Q3_TRY(q3_check_float(op, "x", x));
    Q3_TRY(q3_check_float(op, "gate_weight", gate_weight));
    Q3_TRY(q3_check_float(op, "weights", weights));
    Q3_TRY(q3_check_tensor(op, "ids", ids));
    Q3_TRY(check_dtype_is(op, "ids", ids, Q3_I64));
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
    Q3_TRY(q3_check_writable(op, "ids", ids));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"gate_weight", gate_weight, READ}, {"weights", weights, WRITTEN},
                        {"ids", ids, WRITTEN});
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
    Q3_TRY(q3_check_writable(op, "out", out));
    RETURN_MEMORY_CHECK(op, {"x", x, READ}, {"weights", weights, READ}, {"ids", ids, READ},
                        {"gate_up", gate_up, READ}, {"down", down, READ}, {"out", out, WRITTEN});
}
