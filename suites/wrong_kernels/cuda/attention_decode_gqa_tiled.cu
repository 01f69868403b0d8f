// attention_decode (contiguous cache) mapping query head h to kv head h % Hkv (tiling) instead of
// h / (Hq / Hkv) (grouping). Plain one-block-per-query kernel: scores in shared memory.
#include <stdlib.h>

#include "common.cuh"

namespace {

constexpr int THREADS = 128;

template <typename T>
__global__ void decode_kernel(q3_tensor out, q3_tensor q, q3_tensor k, q3_tensor v, q3_tensor seq_lens, float scale) {
    extern __shared__ float scores[];
    __shared__ float reduced[2];
    const int64_t heads = q.shape[2], new_tokens = q.shape[1], dim = q.shape[3];
    const int64_t h = blockIdx.x % heads, s = (blockIdx.x / heads) % new_tokens, b = blockIdx.x / heads / new_tokens;
    const int64_t kv = h % k.shape[2];  // BUG: should be h / (heads / k.shape[2])
    const int64_t length = q3::load_index(seq_lens, b * seq_lens.strides[0]);
    const int64_t visible = length - new_tokens + s + 1;
    const T *qrow = static_cast<const T *>(q.data) + b * q.strides[0] + s * q.strides[1] + h * q.strides[2];
    for (int64_t j = threadIdx.x; j < visible; j += THREADS) {
        const T *krow = static_cast<const T *>(k.data) + b * k.strides[0] + j * k.strides[1] + kv * k.strides[2];
        float dot = 0.0f;
        for (int64_t d = 0; d < dim; ++d) dot += q3::to_float(qrow[d * q.strides[3]]) * q3::to_float(krow[d * k.strides[3]]);
        scores[j] = dot * scale;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float top = -INFINITY, total = 0.0f;
        for (int64_t j = 0; j < visible; ++j) top = fmaxf(top, scores[j]);
        for (int64_t j = 0; j < visible; ++j) total += expf(scores[j] - top);
        reduced[0] = top;
        reduced[1] = total;
    }
    __syncthreads();
    for (int64_t d = threadIdx.x; d < dim; d += THREADS) {
        float acc = 0.0f;
        for (int64_t j = 0; j < visible; ++j) {
            const T *vrow = static_cast<const T *>(v.data) + b * v.strides[0] + j * v.strides[1] + kv * v.strides[2];
            acc += expf(scores[j] - reduced[0]) / reduced[1] * q3::to_float(vrow[d * v.strides[3]]);
        }
        static_cast<T *>(out.data)[b * out.strides[0] + s * out.strides[1] + h * out.strides[2] + d * out.strides[3]] =
            q3::from_float<T>(acc);
    }
}

}  // namespace

int q3_attention_decode(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache, q3_tensor seq_lens,
                        double scale, void *stream) {
    static const char op[] = "attention_decode";
    int status;
    q3_clear_error();
    if ((status = q3_check_float(op, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_index(op, "seq_lens", &seq_lens)) != Q3_OK) return status;
    if ((status = q3_check_ndim(op, "q", &q, 4)) != Q3_OK) return status;
    if ((status = q3_check_ndim(op, "k_cache", &k_cache, 4)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "k_cache", &k_cache, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "v_cache", &v_cache, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "out", &out, "q", &q)) != Q3_OK) return status;
    if ((status = q3_check_same_shape(op, "v_cache", &v_cache, "k_cache", &k_cache)) != Q3_OK) return status;
    if ((status = q3_check_same_shape(op, "out", &out, "q", &q)) != Q3_OK) return status;
    if ((status = q3_cuda_check_device(op, "q", &q)) != Q3_OK) return status;
    const size_t shared = (size_t)k_cache.shape[1] * sizeof(float);
    if (shared > 48 * 1024) return q3_fail(Q3_UNSUPPORTED, op, "cache longer than 12288 positions");
    const int64_t blocks = q.shape[0] * q.shape[1] * q.shape[2];
    if (blocks == 0) return Q3_OK;
    Q3_DISPATCH_FLOAT(q.dtype, T,
        decode_kernel<T><<<(unsigned)blocks, THREADS, shared, (cudaStream_t)stream>>>(out, q, k_cache, v_cache,
                                                                                        seq_lens, (float)scale));
    return q3_cuda_launch_status(op);
}
