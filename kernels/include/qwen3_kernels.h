/*
 * The C ABI shared by every native library of the harness (kernels/cpu, kernels/nvidia).
 *
 * A tensor travels as a q3_tensor: data pointer, dtype code, rank, shape and strides counted
 * in elements (any sign-free layout: offset views, padded rows, transposes). Every entry point
 * validates dtypes, shapes and strides first and returns a q3_status; on a rejected call it
 * writes nothing. q3_last_error() returns a message naming the operator, the tensor and the
 * problem for the last failing call on this thread. The stream is a cudaStream_t on NVIDIA
 * and must be NULL on the CPU.
 */
#ifndef QWEN3_KERNELS_H
#define QWEN3_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define Q3_ABI_VERSION 1
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

#ifdef __cplusplus
}
#endif

#endif
