/* Host-side argument checks that the CPU and the CUDA library share word for word: dtypes, ranks,
 * shapes, writable outputs and attributes of one call, before any memory is touched; each ends with
 * the library's check of where the call's tensors live (q3_check_memory, entry.h). */
#pragma once

#include "checks.h"

/* Not the values of ids: each library reads them its own way (the CUDA one on the device). */
int q3_check_embedding_call(const char *op, const q3_tensor *out, const q3_tensor *ids, const q3_tensor *weight);
int q3_check_rms_norm_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight,
                           double eps);
int q3_check_add_rms_norm_call(const char *op, const q3_tensor *out, const q3_tensor *sum, const q3_tensor *x,
                               const q3_tensor *residual, const q3_tensor *weight, double eps);
int q3_check_linear_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight,
                         const q3_tensor *bias);
int q3_check_rope_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *positions,
                       double theta, int layout);
int q3_check_swiglu_call(const char *op, const q3_tensor *out, const q3_tensor *gate, const q3_tensor *up);
int q3_check_softmax_call(const char *op, const q3_tensor *out, const q3_tensor *x);
int q3_check_causal_softmax_call(const char *op, const q3_tensor *out, const q3_tensor *x);
int q3_check_attention_prefill_call(const char *op, const q3_tensor *out, const q3_tensor *q, const q3_tensor *k,
                                    const q3_tensor *v, double scale);
/* Dtypes, ranks, q/out/cache shapes (one cache row per request), seq_lens' length, scale. */
int q3_check_attention_decode_call(const char *op, const q3_tensor *out, const q3_tensor *q,
                                   const q3_tensor *k_cache, const q3_tensor *v_cache, const q3_tensor *seq_lens,
                                   double scale);
/* The same but for the cache's rows (blocks), and block_table's dtype, rank, rows and block_size;
 * not its values. */
int q3_check_attention_decode_paged_call(const char *op, const q3_tensor *out, const q3_tensor *q,
                                         const q3_tensor *k_cache, const q3_tensor *v_cache,
                                         const q3_tensor *block_table, const q3_tensor *seq_lens, double scale);
/* Both KV-cache writes: not the values of positions or slots, which each library reads its own way. */
int q3_check_kv_cache_write_call(const char *op, const q3_tensor *k_cache, const q3_tensor *v_cache,
                                 const q3_tensor *k, const q3_tensor *v, const q3_tensor *positions);
int q3_check_kv_cache_write_paged_call(const char *op, const q3_tensor *k_cache, const q3_tensor *v_cache,
                                       const q3_tensor *k, const q3_tensor *v, const q3_tensor *slots);
int q3_check_argmax_call(const char *op, const q3_tensor *out, const q3_tensor *logits);
/* Not the values of random, which each library reads its own way. */
int q3_check_random_sample_call(const char *op, const q3_tensor *out, const q3_tensor *logits,
                                const q3_tensor *random, double temperature, double top_p);
int q3_check_moe_router_call(const char *op, const q3_tensor *weights, const q3_tensor *ids, const q3_tensor *x,
                             const q3_tensor *gate_weight, int64_t top_k);
int q3_check_moe_experts_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weights,
                              const q3_tensor *ids, const q3_tensor *gate_up, const q3_tensor *down);
