/*
 * The C ABI shared by every native library of the harness (kernels/cpu, kernels/nvidia).
 *
 * A tensor travels as a q3_tensor: data pointer, dtype code, rank, shape and strides counted
 * in elements (any sign-free layout: offset views, padded rows, transposes). Every entry point
 * validates dtypes, shapes and strides first and returns a q3_status; on a rejected call it
 * writes nothing. q3_last_error() returns a message naming the operator, the tensor and the
 * problem for the last failing call on this thread. The stream is a cudaStream_t on NVIDIA
 * and must be NULL on the CPU.
 *
 * Index values that live on a device (token ids, cache positions and slots) are checked there
 * without waiting for the device: a bad one makes its call write nothing, and the error is
 * reported later by q3_take_deferred_error (which waits for the stream), in the wording of an
 * immediate one (with several bad elements it may name another of them). Until it is taken, every
 * such checked call writes nothing. The CPU library reports every error at the call.
 *
 * Calls are out of place: an output must not share memory with any other tensor of the call, or the
 * call is refused with Q3_BAD_STRIDES naming both (the kernels assume it: the C ones read through
 * restrict pointers). Two tensors are apart when their byte spans (first to last element) do not
 * meet, or when they have one dtype, shape and strides and no element of the one lies on an element
 * of the other (the K and V halves of one cache); other interleaved views are refused.
 */
#ifndef QWEN3_KERNELS_H
#define QWEN3_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define Q3_ABI_VERSION 2
#define Q3_MAX_DIMS 8

typedef enum {
    Q3_F32 = 0,
    Q3_F16 = 1,
    Q3_BF16 = 2,
    Q3_I32 = 3,
    Q3_I64 = 4,
    Q3_F64 = 5,
} q3_dtype;

typedef enum {
    Q3_OK = 0,
    Q3_BAD_DTYPE = 1,
    Q3_BAD_SHAPE = 2,
    Q3_BAD_STRIDES = 3,
    Q3_BAD_VALUE = 4,       /* e.g. a token id outside the vocabulary */
    Q3_BAD_ATTRIBUTE = 5,   /* e.g. eps < 0, an unknown rope layout */
    Q3_NULL_POINTER = 6,
    Q3_UNSUPPORTED = 7,
    Q3_LAUNCH_FAILED = 8,
    Q3_OUT_OF_MEMORY = 9,
} q3_status;

typedef struct {
    void *data;
    int32_t dtype;
    int32_t ndim;
    int64_t shape[Q3_MAX_DIMS];
    int64_t strides[Q3_MAX_DIMS];
} q3_tensor;

typedef enum {
    Q3_ROPE_NEOX = 0,  /* rotate halves: (x[i], x[i + d/2]); Qwen3 */
    Q3_ROPE_GPTJ = 1,  /* rotate interleaved pairs: (x[2i], x[2i + 1]) */
} q3_rope_layout;

int q3_abi_version(void);
const char *q3_status_string(int status);
const char *q3_last_error(void);
/* Waits for `stream`, then returns (and clears) the first deferred index error since the last take:
 * Q3_OK when there is none, else its status with q3_last_error() naming operator, tensor and index. */
int q3_take_deferred_error(void *stream);

/* out[t, :] = weight[ids[t], :]; ids int32/int64 of any rank, out = ids.shape + [hidden]. */
int q3_embedding(q3_tensor out, q3_tensor ids, q3_tensor weight, void *stream);

/* out = (x * rsqrt(mean(x^2, -1) + eps)).to(x.dtype) * weight over the last dim; x of any rank.
 * weight: x's dtype, or float32 with f16/bf16 x; out: x's dtype. */
int q3_rms_norm(q3_tensor out, q3_tensor x, q3_tensor weight, double eps, void *stream);

/* sum = x + residual (rounded to the dtype); out = rms_norm(sum, weight, eps). */
int q3_add_rms_norm(q3_tensor out, q3_tensor sum, q3_tensor x, q3_tensor residual,
                    q3_tensor weight, double eps, void *stream);

/* out[..., n] = sum_k x[..., k] * weight[n, k] (+ bias[n]); bias.data may be NULL. */
int q3_linear(q3_tensor out, q3_tensor x, q3_tensor weight, q3_tensor bias, void *stream);

/* Rotary embedding of x [tokens, heads, head_dim] at positions [tokens] (int32/int64).
 * inv_freq[i] = theta ** (-2i / head_dim) in float32, as Hugging Face computes it. */
int q3_rope(q3_tensor out, q3_tensor x, q3_tensor positions, double theta, int layout,
            void *stream);

/* out = silu(gate) * up, elementwise over tensors of one shape. */
int q3_swiglu(q3_tensor out, q3_tensor gate, q3_tensor up, void *stream);

/* out = softmax(x) over the last dim: max-subtracted, exp and sum in float32, written in x's dtype. */
int q3_softmax(q3_tensor out, q3_tensor x, void *stream);

/* Causal softmax over the last dim of x [..., q_len, k_len] (q_len <= k_len): query row i sees keys
 * j <= i + (k_len - q_len); masked entries are written as 0. */
int q3_causal_softmax(q3_tensor out, q3_tensor x, void *stream);

/* Causal grouped-query attention over one sequence: q [T, Hq, D], k and v [T, Hkv, D], Hq % Hkv == 0;
 * query head h reads kv head h / (Hq / Hkv). scores = (q . k) * scale, causal softmax in float32,
 * out [T, Hq, D] = P @ v in q's dtype. q, k, v and out share one dtype. */
int q3_attention_prefill(q3_tensor out, q3_tensor q, q3_tensor k, q3_tensor v, double scale, void *stream);

/* Attention of S new tokens per request against a contiguous KV cache: q [B, S, Hq, D];
 * k_cache, v_cache [B, L, Hkv, D]; seq_lens [B] (int32/int64) counts every cached token of a request,
 * the S new ones included (already written), S <= seq_lens[b] <= L. New token s of request b sits at
 * position seq_lens[b] - S + s and attends to positions 0 .. that one. Positions >= seq_lens[b] are
 * never read. out [B, S, Hq, D]. */
int q3_attention_decode(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache,
                        q3_tensor seq_lens, double scale, void *stream);

/* The same against a paged cache: k_cache, v_cache [num_blocks, block_size, Hkv, D]; block_table
 * [B, max_blocks] (int32/int64): position p of request b lives in block block_table[b, p / block_size]
 * at offset p % block_size. seq_lens[b] <= max_blocks * block_size. */
int q3_attention_decode_paged(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache,
                              q3_tensor block_table, q3_tensor seq_lens, double scale, void *stream);

/* k_cache[b, positions[b, s]] = k[b, s] and the same for v: k, v [B, S, Hkv, D]; caches [B, L, Hkv, D];
 * positions [B, S] (int32/int64) in [0, L), distinct within a request. Nothing else is written. */
int q3_kv_cache_write(q3_tensor k_cache, q3_tensor v_cache, q3_tensor k, q3_tensor v,
                      q3_tensor positions, void *stream);

/* Paged: k, v [N, Hkv, D]; slots [N] (int32/int64), slot = block * block_size + offset into caches
 * [num_blocks, block_size, Hkv, D]; slots distinct and in range. Nothing else is written. */
int q3_kv_cache_write_paged(q3_tensor k_cache, q3_tensor v_cache, q3_tensor k, q3_tensor v,
                            q3_tensor slots, void *stream);

/* out [B] (int64) = the first index of the largest value of each row of logits [B, V]. */
int q3_argmax(q3_tensor out, q3_tensor logits, void *stream);

/* One token per row of logits [B, V] from an explicit uniform value random [B] (float32, [0, 1)):
 * p = softmax(logits / temperature) in float32; tokens sorted by descending p (ties: lower index
 * first); keep the first top_k (top_k <= 0 or >= V keeps all); then keep the shortest prefix whose
 * cumulative p reaches top_p times the kept total (the token that crosses is kept); pick the first
 * kept token whose cumulative p exceeds random * (kept prefix total). out [B] (int64). */
int q3_random_sample(q3_tensor out, q3_tensor logits, q3_tensor random, double temperature,
                     int64_t top_k, double top_p, void *stream);

/* Qwen3-MoE router: logits = x @ gate_weight^T (x [T, H], gate_weight [E, H], one dtype, float32
 * accumulation, rounded to x's dtype), p = softmax(logits) in float32, the top_k experts by
 * descending p (ties: lower index first); weights = their p, divided by their sum when
 * norm_topk_prob; weights [T, top_k] in x's dtype, ids [T, top_k] int64, in descending order. */
int q3_moe_router(q3_tensor weights, q3_tensor ids, q3_tensor x, q3_tensor gate_weight,
                  int64_t top_k, int norm_topk_prob, void *stream);

/* Qwen3-MoE experts: out[t] = sum_j weights[t, j] * down[e] @ (silu(gate[e] @ x[t]) * (up[e] @ x[t]))
 * with e = ids[t, j]; gate_up [E, 2I, H] (rows 0..I-1 gate, I..2I-1 up), down [E, H, I]; x, weights,
 * gate_up, down and out [T, H] in one dtype; ids [T, k] int32/int64 in [0, E). */
int q3_moe_experts(q3_tensor out, q3_tensor x, q3_tensor weights, q3_tensor ids, q3_tensor gate_up,
                   q3_tensor down, void *stream);

#ifdef __cplusplus
}
#endif

#endif
