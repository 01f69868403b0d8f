// out[b] = the first index of the largest value of logits[b, :]; NaN counts as the largest (as
// torch.argmax), the first NaN wins. Two passes so that a few rows of a large vocabulary fill the
// GPU: blocks (chunk, row) each reduce a chunk of a row to a (value, index) candidate, then one
// warp per row combines its chunks. The preference order is total, so the result does not depend
// on the reduction order.
#include <math.h>

#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

constexpr int THREADS = 256;
constexpr int64_t NO_INDEX = INT64_MAX;  // an empty candidate: (-inf, NO_INDEX) loses to any element

// True when candidate a is preferred over b: NaN first, then the larger value, then the lower index.
__device__ __forceinline__ bool better(float av, int64_t ai, float bv, int64_t bi) {
    const bool an = isnan(av), bn = isnan(bv);
    if (an != bn) return an;
    if (!an && av != bv) return av > bv;
    return ai < bi;
}

__device__ __forceinline__ void warp_best(float &v, int64_t &i) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, (long long)i, o);
        if (better(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

template <typename T, int N>
__global__ void __launch_bounds__(THREADS) argmax_chunks(q3_tensor logits, int64_t rows, int64_t vocab,
                                                         int64_t chunk_items, float *chunk_value,
                                                         int64_t *chunk_index) {
    __shared__ float values[THREADS / 32];
    __shared__ int64_t indices[THREADS / 32];
    const int64_t items = vocab / N;
    const int64_t first = (int64_t)blockIdx.x * chunk_items;
    const int64_t end = first + chunk_items < items ? first + chunk_items : items;
    const int64_t stride = logits.strides[1];
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        const T *lr = static_cast<const T *>(logits.data) + row * logits.strides[0];
        float best = -INFINITY;
        int64_t best_index = NO_INDEX;
        for (int64_t item = first + threadIdx.x; item < end; item += THREADS) {
            const Pack<T, N> p = load_item<T, N>(lr, stride, item);
#pragma unroll
            for (int e = 0; e < N; ++e) {
                const float v = q3::to_float(p.v[e]);
                if (better(v, item * N + e, best, best_index)) {
                    best = v;
                    best_index = item * N + e;
                }
            }
        }
        warp_best(best, best_index);
        __syncthreads();  // the previous row's readers are done with the shared arrays
        if ((threadIdx.x & 31) == 0) {
            values[threadIdx.x >> 5] = best;
            indices[threadIdx.x >> 5] = best_index;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < THREADS / 32; ++w) {
                if (better(values[w], indices[w], best, best_index)) {
                    best = values[w];
                    best_index = indices[w];
                }
            }
            chunk_value[row * gridDim.x + blockIdx.x] = best;
            chunk_index[row * gridDim.x + blockIdx.x] = best_index;
        }
    }
}

// One warp per row combines the row's chunk candidates.
__global__ void __launch_bounds__(THREADS) argmax_final(q3_tensor out, int64_t rows, int64_t chunks,
                                                        const float *chunk_value, const int64_t *chunk_index) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = THREADS / 32;
    for (int64_t row = (int64_t)blockIdx.x * warps + (threadIdx.x >> 5); row < rows; row += (int64_t)gridDim.x * warps) {
        float best = -INFINITY;
        int64_t best_index = NO_INDEX;
        for (int64_t c = lane; c < chunks; c += 32) {
            const float v = chunk_value[row * chunks + c];
            const int64_t i = chunk_index[row * chunks + c];
            if (better(v, i, best, best_index)) {
                best = v;
                best_index = i;
            }
        }
        warp_best(best, best_index);
        if (lane == 0) static_cast<int64_t *>(out.data)[row * out.strides[0]] = best_index;
    }
}

template <typename T>
int launch(const char *op, const q3_tensor &out, const q3_tensor &logits, cudaStream_t stream) {
    const int64_t rows = logits.shape[0], vocab = logits.shape[1];
    constexpr int V = Vec<T>::N;
    const bool vec = vocab % V == 0 && rows_vectorizable(logits, V);
    const int64_t items = vec ? vocab / V : vocab;
    int sms = 0;
    const int queried = sm_count(op, &sms);
    if (queried != Q3_OK) return queried;
    int64_t chunks = ceil_div(4 * (int64_t)sms, rows);
    const int64_t most = ceil_div(items, 2 * THREADS);  // at least two items a thread
    if (chunks > most) chunks = most;
    if (chunks < 1) chunks = 1;
    const int64_t chunk_items = ceil_div(items, chunks);
    chunks = ceil_div(items, chunk_items);
    const int64_t count = rows * chunks;
    void *scratch = NULL;
    cudaError_t error = scratch_alloc(&scratch, (size_t)count * (sizeof(int64_t) + sizeof(float)), stream);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate %lld chunk candidates: %s", (long long)count,
                       cudaGetErrorString(error));
    }
    int64_t *chunk_index = static_cast<int64_t *>(scratch);
    float *chunk_value = reinterpret_cast<float *>(chunk_index + count);
    const dim3 grid((unsigned)chunks, (unsigned)(rows < 65535 ? rows : 65535));
    if (vec) {
        argmax_chunks<T, V><<<grid, THREADS, 0, stream>>>(logits, rows, vocab, chunk_items, chunk_value, chunk_index);
    } else {
        argmax_chunks<T, 1><<<grid, THREADS, 0, stream>>>(logits, rows, vocab, chunk_items, chunk_value, chunk_index);
    }
    int64_t final_blocks = ceil_div(rows, THREADS / 32);
    if (final_blocks > ((int64_t)1 << 30)) final_blocks = (int64_t)1 << 30;
    argmax_final<<<(unsigned)final_blocks, THREADS, 0, stream>>>(out, rows, chunks, chunk_value, chunk_index);
    const int status = q3_cuda_launch_status(op);
    cudaFreeAsync(scratch, stream);
    return status;
}

}  // namespace

int q3_argmax(q3_tensor out, q3_tensor logits, void *stream) {
    Q3_ENTER("argmax", q3_check_argmax_call(op, &out, &logits));

    if (logits.shape[0] == 0) return Q3_OK;
    cudaStream_t s = (cudaStream_t)stream;
    status = Q3_OK;
    Q3_DISPATCH_FLOAT(logits.dtype, T, status = launch<T>(op, out, logits, s));
    return status;
}
