// Qwen3-MoE router: logits = x @ gate_weight^T (float32 accumulation, rounded to x's dtype as
// F.linear's output is: the linear layer's path, cuBLAS or the tiled kernel, into a [T, E] scratch),
// then one warp per token: softmax over E in float32 (max-subtracted, sum in double), the top_k by
// descending p with ties to the lower index (k rounds of a warp argmax), weights divided by their
// float32 sum taken in that order when norm_topk_prob, written in x's dtype; ids int64.
#include "common.cuh"
#include "entry.h"
#include "gemm_tiles.cuh"

namespace {

constexpr int kWarpsPerBlock = 4;

// a before b in the router's order: larger p first, ties (and NaNs, which only come all at once)
// by lower index; index < 0 means no candidate.
__device__ __forceinline__ bool better(float pa, int ia, float pb, int ib) {
    if (ib < 0) return ia >= 0;
    if (ia < 0) return false;
    if (pa > pb) return true;
    if (pb > pa) return false;
    return ia < ib;
}

template <typename T>
__global__ void route_kernel(const T *logits, int64_t tokens, int experts, int top_k, int norm, q3_tensor weights,
                             q3_tensor ids) {
    extern __shared__ __align__(16) unsigned char shared[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warps = blockDim.x / 32;
    const int64_t t = (int64_t)blockIdx.x * warps + warp;
    if (t >= tokens) return;  // whole warps only; no block-wide barrier below
    float *p = reinterpret_cast<float *>(shared) + (size_t)warp * experts;
    int *chosen = reinterpret_cast<int *>(shared + (size_t)warps * experts * sizeof(float)) + (size_t)warp * experts;
    int *taken = reinterpret_cast<int *>(shared + (size_t)warps * experts * 2 * sizeof(float)) + (size_t)warp * experts;
    const T *row = logits + t * experts;

    float max_logit = -INFINITY;
    for (int e = lane; e < experts; e += 32) {
        const float v = q3::to_float(row[e]);
        p[e] = v;
        taken[e] = 0;
        max_logit = fmaxf(max_logit, v);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        max_logit = fmaxf(max_logit, __shfl_xor_sync(0xffffffffu, max_logit, offset));
    }
    double sum = 0.0;
    for (int e = lane; e < experts; e += 32) {
        const float v = expf(p[e] - max_logit);
        p[e] = v;
        sum += v;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    const float total = (float)sum;
    for (int e = lane; e < experts; e += 32) p[e] /= total;
    __syncwarp();

    float top_sum = 0.0f;  // lane 0's running float32 sum, in selection order
    for (int j = 0; j < top_k; ++j) {
        float best_p = 0.0f;
        int best = -1;
        for (int e = lane; e < experts; e += 32) {
            if (taken[e]) continue;
            if (better(p[e], e, best_p, best)) {
                best_p = p[e];
                best = e;
            }
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) {
            const float other_p = __shfl_xor_sync(0xffffffffu, best_p, offset);
            const int other = __shfl_xor_sync(0xffffffffu, best, offset);
            if (better(other_p, other, best_p, best)) {
                best_p = other_p;
                best = other;
            }
        }
        if (lane == 0) {
            taken[best] = 1;
            chosen[j] = best;
            top_sum += best_p;
        }
        __syncwarp();
    }
    top_sum = __shfl_sync(0xffffffffu, top_sum, 0);
    T *w_out = static_cast<T *>(weights.data);
    int64_t *id_out = static_cast<int64_t *>(ids.data);
    for (int j = lane; j < top_k; j += 32) {
        const int e = chosen[j];
        const float w = norm ? p[e] / top_sum : p[e];
        w_out[t * weights.strides[0] + j * weights.strides[1]] = q3::from_float<T>(w);
        id_out[t * ids.strides[0] + j * ids.strides[1]] = e;
    }
}

template <typename T>
int launch_route(const char *op, const void *logits, int64_t tokens, int experts, int top_k, int norm,
                 const q3_tensor &weights, const q3_tensor &ids, cudaStream_t stream) {
    const size_t per_warp = (size_t)experts * 3 * sizeof(float);
    int warps = kWarpsPerBlock;
    while (warps > 1 && per_warp * warps > 48 * 1024) warps /= 2;
    const size_t bytes = per_warp * warps;
    if (bytes > 48 * 1024) {
        int limit = 0;
        const int queried = q3_cuda_device_attribute(op, cudaDevAttrMaxSharedMemoryPerBlockOptin, &limit);
        if (queried != Q3_OK) return queried;
        if (bytes > (size_t)limit) {
            return q3_fail(Q3_UNSUPPORTED, op, "%d experts need %zu bytes of shared memory per token; the device has %d",
                           experts, bytes, limit);
        }
        const int reserved = q3_cuda_reserve_shared_memory(op, reinterpret_cast<const void *>(route_kernel<T>), bytes);
        if (reserved != Q3_OK) return reserved;
    }
    const int64_t blocks = (tokens + warps - 1) / warps;
    route_kernel<T><<<(unsigned)blocks, warps * 32, bytes, stream>>>(static_cast<const T *>(logits), tokens, experts,
                                                                       top_k, norm, weights, ids);
    return Q3_OK;
}

}  // namespace

int q3_moe_router(q3_tensor weights, q3_tensor ids, q3_tensor x, q3_tensor gate_weight,
                  int64_t top_k, int norm_topk_prob, void *stream) {
    Q3_ENTER("moe_router", q3_check_moe_router_call(op, &weights, &ids, &x, &gate_weight, top_k));
    const int64_t tokens = x.shape[0], experts = gate_weight.shape[0];
    if (tokens == 0) return Q3_OK;
    if (experts > (1 << 24)) {
        return q3_fail(Q3_UNSUPPORTED, op, "%lld experts: at most %d are supported", (long long)experts, 1 << 24);
    }

    cudaStream_t s = (cudaStream_t)stream;
    const size_t element = x.dtype == Q3_F32 ? 4 : 2;
    void *logits = NULL;
    if (cudaMallocAsync(&logits, (size_t)tokens * (size_t)experts * element, s) != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the [%lld, %lld] logits scratch", (long long)tokens,
                       (long long)experts);
    }
    q3_tensor logits_t;
    memset(&logits_t, 0, sizeof logits_t);
    logits_t.data = logits;
    logits_t.dtype = x.dtype;
    logits_t.ndim = 2;
    logits_t.shape[0] = tokens;
    logits_t.shape[1] = experts;
    logits_t.strides[0] = experts;
    logits_t.strides[1] = 1;
    q3_tensor no_bias;
    memset(&no_bias, 0, sizeof no_bias);
    status = q3_linear_compute(op, logits_t, x, gate_weight, no_bias, s);
    if (status == Q3_OK) {
        Q3_DISPATCH_FLOAT(x.dtype, T,
                          status = launch_route<T>(op, logits, tokens, (int)experts, (int)top_k, norm_topk_prob != 0,
                                                   weights, ids, s));
    }
    cudaFreeAsync(logits, s);
    if (status != Q3_OK) return status;
    return q3_cuda_launch_status(op);
}
