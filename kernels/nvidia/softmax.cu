// Softmax over the last dim, and the causal variant over x [..., q_len, k_len]: max-subtracted,
// exp in float32, summed in float per 16-byte pack and in double across packs, written once in x's
// dtype; masked entries are written as 0. A row that is all -inf yields NaN, as PyTorch does.
//
// Rows of up to 4096 items (16-byte packs, or single elements for strided layouts) live in
// registers: a team of 1..32 lanes per short row, a block per longer row; x is read once, and
// blocks loop over rows, loading the next while reducing the current one. Longer
// rows, and long rows when there are too few to fill the GPU, are split into chunks: one kernel
// writes each chunk's (max, sum of exp) to a scratch buffer, a second combines them in a fixed
// order and writes its chunk.
#include <math.h>

#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

// softmax is causal_softmax with q_len = 1 and shift = cols - 1: every column visible.
__device__ __forceinline__ int64_t visible_cols(int64_t row, int64_t q_len, int64_t shift) {
    return row % q_len + shift + 1;
}

// exp(d) for d = v - max <= 0. Outputs of 16 bits take exp2f(d * log2(e)): the product's rounding
// adds a relative error below |d| * 2^-23 (under 1e-5 for any probability above float's smallest),
// a hundredth of a float16 ulp, at half expf's instructions; float32 outputs keep expf.
template <typename T> __device__ __forceinline__ float exp_of(float d) {
    if constexpr (sizeof(T) < sizeof(float)) {
        return exp2f(d * 1.4426950408889634f);
    } else {
        return expf(d);
    }
}

// A pack's visible elements are [first, visible): all N of them on the common path, which then
// skips the per-element test.
template <typename T, int N>
__device__ __forceinline__ float pack_max(const Pack<T, N> &p, int64_t first, int64_t visible) {
    float m = -INFINITY;
    if (first + N <= visible) {
#pragma unroll
        for (int e = 0; e < N; ++e) m = fmaxf(m, q3::to_float(p.v[e]));
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) {
            if (first + e < visible) m = fmaxf(m, q3::to_float(p.v[e]));
        }
    }
    return m;
}

// Sum of exp(v - max_value) over a pack's visible elements, in float (at most 8 terms), widened to
// double by the caller. With max_value == -inf (nothing visible but -inf and NaN) the pack adds 0,
// or NaN when it holds a NaN: exp(-inf - -inf) would make every fully masked pack NaN.
template <typename T, int N>
__device__ __forceinline__ float pack_exp_sum(const Pack<T, N> &p, int64_t first, int64_t visible, float max_value) {
    float s = 0.0f;
    const bool empty = max_value == -INFINITY;
#pragma unroll
    for (int e = 0; e < N; ++e) {
        if (first + N <= visible || first + e < visible) {
            const float v = q3::to_float(p.v[e]);
            s += empty ? (isnan(v) ? NAN : 0.0f) : exp_of<T>(v - max_value);
        }
    }
    return s;
}

// exp(v - max_value) / total over the visible elements, 0 elsewhere. Outputs narrower than float
// multiply by the reciprocal (its extra rounding is far below their own); float outputs divide.
template <typename T, int N>
__device__ __forceinline__ Pack<T, N> pack_probabilities(const Pack<T, N> &p, bool loaded, int64_t first,
                                                         int64_t visible, float max_value, float total,
                                                         float inverse_total) {
    Pack<T, N> o;
#pragma unroll
    for (int e = 0; e < N; ++e) {
        float q = 0.0f;
        if (loaded && (first + N <= visible || first + e < visible)) {
            const float numerator = exp_of<T>(q3::to_float(p.v[e]) - max_value);
            if constexpr (sizeof(T) < sizeof(float)) {
                q = numerator * inverse_total;
            } else {
                q = numerator / total;
            }
        }
        o.v[e] = q3::from_float<T>(q);
    }
    return o;
}

template <typename T, int N, int G, int K>
__global__ void __launch_bounds__(MAX_ROW_THREADS) softmax_rows(q3_tensor out, q3_tensor x, int64_t rows, int64_t cols,
                                                     int64_t q_len, int64_t shift) {
    const int lanes = G > 0 ? G : (int)blockDim.x;
    const int lane = G > 0 ? (int)(threadIdx.x % G) : (int)threadIdx.x;
    const int64_t rows_per_block = G > 0 ? (int64_t)(blockDim.x / G) : 1;
    const int64_t items = cols / N;
    const T *xd = static_cast<const T *>(x.data);
    T *od = static_cast<T *>(out.data);
    const int64_t xs = x.strides[x.ndim - 1], os = out.strides[out.ndim - 1];
    // Short plans (K <= 2) load the block's next row while this one is reduced and written.
    constexpr bool PREFETCH = K <= 2;
    const int64_t stride = (int64_t)gridDim.x * rows_per_block;
    const int64_t team_row = G > 0 ? (int64_t)(threadIdx.x / G) : 0;
    auto load_row = [&](int64_t row, Pack<T, N>(&cache)[K]) {
        if (row >= rows) return;
        const int64_t visible = visible_cols(row, q_len, shift);
        const T *xr = xd + row_offset(x, row);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (item < items && item * N < visible) cache[k] = load_item<T, N>(xr, xs, item);
        }
    };
    Pack<T, N> cache[K];
    int64_t base = (int64_t)blockIdx.x * rows_per_block;
    if (PREFETCH) load_row(base + team_row, cache);
    for (; base < rows; base += stride) {
        const int64_t row = base + team_row;
        const bool valid = row < rows;
        const int64_t visible = valid ? visible_cols(row, q_len, shift) : 0;
        Pack<T, N> next[K];
        if (PREFETCH) {
            load_row(row + stride, next);
        } else {
            load_row(row, cache);
        }
        float max_value = -INFINITY;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (valid && item < items && item * N < visible) {
                max_value = fmaxf(max_value, pack_max<T, N>(cache[k], item * N, visible));
            }
        }
        max_value = team_max<G>(max_value);
        double sum = 0.0;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (valid && item < items && item * N < visible) {
                sum += (double)pack_exp_sum<T, N>(cache[k], item * N, visible, max_value);
            }
        }
        const float total = (float)team_sum<G>(sum);
        const float inverse_total = 1.0f / total;
        T *orow = od + (valid ? row_offset(out, row) : 0);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (valid && item < items) {
                store_item<T, N>(orow, os, item,
                                 pack_probabilities<T, N>(cache[k], item * N < visible, item * N, visible, max_value,
                                                          total, inverse_total));
            }
        }
        if (PREFETCH) {
#pragma unroll
            for (int k = 0; k < K; ++k) cache[k] = next[k];
        }
    }
}

// Split rows: block (chunk, row) covers items [chunk * chunk_items, ...) with 256 threads of up to
// SPLIT_K items each.
constexpr int SPLIT_THREADS = 256, SPLIT_K = 4;

template <typename T, int N>
__global__ void __launch_bounds__(SPLIT_THREADS, 4) softmax_chunk_stats(q3_tensor x, int64_t rows, int64_t cols,
                                                                     int64_t q_len, int64_t shift,
                                                                     int64_t chunk_items, float *chunk_max,
                                                                     double *chunk_sum) {
    const int64_t items = cols / N;
    const int64_t first = (int64_t)blockIdx.x * chunk_items;
    const int64_t end = first + chunk_items < items ? first + chunk_items : items;
    const int64_t xs = x.strides[x.ndim - 1];
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        const int64_t visible = visible_cols(row, q_len, shift);
        const T *xr = static_cast<const T *>(x.data) + row_offset(x, row);
        Pack<T, N> cache[SPLIT_K];
        float max_value = -INFINITY;
#pragma unroll
        for (int k = 0; k < SPLIT_K; ++k) {
            const int64_t item = first + threadIdx.x + (int64_t)k * SPLIT_THREADS;
            if (item < end && item * N < visible) {
                cache[k] = load_item<T, N>(xr, xs, item);
                max_value = fmaxf(max_value, pack_max<T, N>(cache[k], item * N, visible));
            }
        }
        max_value = team_max<0>(max_value);
        double sum = 0.0;
#pragma unroll
        for (int k = 0; k < SPLIT_K; ++k) {
            const int64_t item = first + threadIdx.x + (int64_t)k * SPLIT_THREADS;
            if (item < end && item * N < visible) {
                sum += (double)pack_exp_sum<T, N>(cache[k], item * N, visible, max_value);
            }
        }
        sum = team_sum<0>(sum);
        if (threadIdx.x == 0) {
            chunk_max[row * gridDim.x + blockIdx.x] = max_value;
            chunk_sum[row * gridDim.x + blockIdx.x] = sum;
        }
    }
}

template <typename T, int N>
__global__ void __launch_bounds__(SPLIT_THREADS, 4) softmax_chunk_write(q3_tensor out, q3_tensor x, int64_t rows,
                                                                     int64_t cols, int64_t q_len, int64_t shift,
                                                                     int64_t chunk_items, const float *chunk_max,
                                                                     const double *chunk_sum) {
    const int64_t items = cols / N;
    const int64_t first = (int64_t)blockIdx.x * chunk_items;
    const int64_t end = first + chunk_items < items ? first + chunk_items : items;
    const int64_t xs = x.strides[x.ndim - 1], os = out.strides[out.ndim - 1];
    const int chunks = (int)gridDim.x;
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        const int64_t visible = visible_cols(row, q_len, shift);
        const T *xr = static_cast<const T *>(x.data) + row_offset(x, row);
        T *orow = static_cast<T *>(out.data) + row_offset(out, row);
        // Issue this chunk's loads first, then combine the row's chunk statistics.
        Pack<T, N> cache[SPLIT_K];
#pragma unroll
        for (int k = 0; k < SPLIT_K; ++k) {
            const int64_t item = first + threadIdx.x + (int64_t)k * SPLIT_THREADS;
            if (item < end && item * N < visible) cache[k] = load_item<T, N>(xr, xs, item);
        }
        float max_value = -INFINITY;
        for (int c = threadIdx.x; c < chunks; c += SPLIT_THREADS) {
            max_value = fmaxf(max_value, chunk_max[row * chunks + c]);
        }
        max_value = team_max<0>(max_value);
        double sum = 0.0;
        for (int c = threadIdx.x; c < chunks; c += SPLIT_THREADS) {
            const float m = chunk_max[row * chunks + c];
            // exp(m - max) is NaN when both are -inf: such a chunk adds its sum as is (0, or NaN
            // when it holds a NaN). A fully masked row still ends as NaN through exp(x - max)
            // below, as in the one-pass kernel.
            const double s = chunk_sum[row * chunks + c];
            sum += m == -INFINITY ? s : s * (double)expf(m - max_value);
        }
        const float total = (float)team_sum<0>(sum);
        const float inverse_total = 1.0f / total;
#pragma unroll
        for (int k = 0; k < SPLIT_K; ++k) {
            const int64_t item = first + threadIdx.x + (int64_t)k * SPLIT_THREADS;
            if (item < end) {
                store_item<T, N>(orow, os, item,
                                 pack_probabilities<T, N>(cache[k], item * N < visible, item * N, visible, max_value,
                                                          total, inverse_total));
            }
        }
    }
}

template <typename T, int N>
int launch_split(const char *op, const q3_tensor &out, const q3_tensor &x, int64_t rows, int64_t cols, int64_t q_len,
                 int64_t shift, int sms, cudaStream_t stream) {
    const int64_t items = cols / N;
    const int64_t capacity = (int64_t)SPLIT_THREADS * SPLIT_K;
    const int64_t least = ceil_div(items, capacity), most = ceil_div(items, SPLIT_THREADS);
    int64_t chunks = ceil_div(4 * (int64_t)sms, rows);
    if (chunks < least) chunks = least;
    if (chunks > most) chunks = most;
    const int64_t chunk_items = ceil_div(items, chunks);
    chunks = ceil_div(items, chunk_items);
    if (chunks > 0x7fffffff) return q3_fail(Q3_UNSUPPORTED, op, "tensor 'x' has rows too long to split");
    const int64_t count = rows * chunks;
    void *scratch = NULL;
    cudaError_t error = scratch_alloc(&scratch, (size_t)count * (sizeof(float) + sizeof(double)), stream);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate %lld chunk statistics: %s", (long long)count,
                       cudaGetErrorString(error));
    }
    double *chunk_sum = static_cast<double *>(scratch);
    float *chunk_max = reinterpret_cast<float *>(chunk_sum + count);
    const dim3 grid((unsigned)chunks, (unsigned)(rows < 65535 ? rows : 65535));
    softmax_chunk_stats<T, N><<<grid, SPLIT_THREADS, 0, stream>>>(x, rows, cols, q_len, shift, chunk_items,
                                                                  chunk_max, chunk_sum);
    softmax_chunk_write<T, N><<<grid, SPLIT_THREADS, 0, stream>>>(out, x, rows, cols, q_len, shift, chunk_items,
                                                                  chunk_max, chunk_sum);
    const int status = q3_cuda_launch_status(op);
    cudaFreeAsync(scratch, stream);
    return status;
}

template <typename T>
int launch(const char *op, const q3_tensor &out, const q3_tensor &x, int64_t rows, int64_t cols, int64_t q_len,
           int64_t shift, cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    const bool vec = cols % V == 0 && rows_vectorizable(x, V) && rows_vectorizable(out, V);
    const int64_t items = vec ? cols / V : cols;
    int sms = 0;
    const int queried = sm_count(op, &sms);
    if (queried != Q3_OK) return queried;
    RowPlan plan;
    const bool fits = plan_rows(items, vec, &plan);
    // Long rows that would leave most of the GPU idle are split too.
    if (!fits || (items > 2048 && rows < 2 * (int64_t)sms)) {
        return vec ? launch_split<T, V>(op, out, x, rows, cols, q_len, shift, sms, stream)
                   : launch_split<T, 1>(op, out, x, rows, cols, q_len, shift, sms, stream);
    }
    dim3 grid, block;
    plan_grid(plan, rows, &grid, &block);
    if (vec) {
        Q3R_DISPATCH_PLAN(plan, G, K, softmax_rows<T, V, G, K><<<resident_grid(softmax_rows<T, V, G, K>, grid, block, sms),
                                                                 block, 0, stream>>>(out, x, rows, cols, q_len, shift));
    } else {
        Q3R_DISPATCH_PLAN(plan, G, K, softmax_rows<T, 1, G, K><<<resident_grid(softmax_rows<T, 1, G, K>, grid, block, sms),
                                                                 block, 0, stream>>>(out, x, rows, cols, q_len, shift));
    }
    return q3_cuda_launch_status(op);
}

int run(const char *op, q3_tensor out, q3_tensor x, int64_t q_len, int64_t shift, void *stream) {
    const int64_t rows = q3_rows(&x), cols = x.shape[x.ndim - 1];
    if (rows == 0 || cols == 0) return Q3_OK;
    q3_tensor *const tensors[] = {&out, &x};
    collapse(tensors, 2, true);
    cudaStream_t s = (cudaStream_t)stream;
    int status = Q3_OK;
    Q3_DISPATCH_FLOAT(x.dtype, T, status = launch<T>(op, out, x, rows, cols, q_len, shift, s));
    return status;
}

}  // namespace

int q3_softmax(q3_tensor out, q3_tensor x, void *stream) {
    Q3_ENTER("softmax", q3_check_softmax_call(op, &out, &x));
    const int64_t cols = x.shape[x.ndim - 1];
    return run(op, out, x, 1, cols - 1, stream);
}

int q3_causal_softmax(q3_tensor out, q3_tensor x, void *stream) {
    Q3_ENTER("causal_softmax", q3_check_causal_softmax_call(op, &out, &x));
    const int64_t q_len = x.shape[x.ndim - 2], k_len = x.shape[x.ndim - 1];
    return run(op, out, x, q_len, k_len - q_len, stream);
}
