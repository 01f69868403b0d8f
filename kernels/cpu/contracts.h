/* Host-side argument checks that the CPU and the CUDA library share word for word: dtypes, ranks,
 * shapes, writable outputs and attributes of one call, before any memory is touched. */
#pragma once

#include "common.h"

int q3_check_linear_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weight,
                         const q3_tensor *bias);
int q3_check_attention_prefill_call(const char *op, const q3_tensor *out, const q3_tensor *q, const q3_tensor *k,
                                    const q3_tensor *v, double scale);
/* What both decode variants check: dtypes, ranks, q/out/cache shapes, seq_lens' length, scale. */
int q3_check_attention_decode_call(const char *op, const q3_tensor *out, const q3_tensor *q,
                                   const q3_tensor *k_cache, const q3_tensor *v_cache, const q3_tensor *seq_lens,
                                   double scale);
int q3_check_moe_router_call(const char *op, const q3_tensor *weights, const q3_tensor *ids, const q3_tensor *x,
                             const q3_tensor *gate_weight, int64_t top_k);
int q3_check_moe_experts_call(const char *op, const q3_tensor *out, const q3_tensor *x, const q3_tensor *weights,
                              const q3_tensor *ids, const q3_tensor *gate_up, const q3_tensor *down);
