// Row helpers of the memory-bound kernels (embedding, norms, rope, swiglu, softmax, argmax, KV
// cache writes): packs of elements loaded with one 16-byte access, team (sub-warp / block)
// reductions, the RMSNorm row, layout collapsing and the fast-path tests done on the host.
#pragma once

#include <stdint.h>

#include "common.cuh"

namespace q3r {

// ---------------------------------------------------------------------------------------------
// Packs: N consecutive elements (one 16-byte access when N > 1), or one strided element (N == 1).

template <typename T, int N> struct alignas(sizeof(T) * N > 16 ? 16 : sizeof(T) * N) Pack {
    T v[N];
};

// Vector width of the fast paths: the elements of T in 16 bytes.
template <typename T> struct Vec { static constexpr int N = 16 / (int)sizeof(T); };

// Item `item` of a row: elements [item * N, item * N + N) of a unit-stride row when N > 1, the
// element item * stride when N == 1.
template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_item(const T *row, int64_t stride, int64_t item) {
    if constexpr (N == 1) {
        Pack<T, 1> p;
        p.v[0] = row[item * stride];
        return p;
    } else {
        return *reinterpret_cast<const Pack<T, N> *>(row + item * N);
    }
}

// Stores a 16-byte pack as one vector store (WIDE): nvcc otherwise splits it into 4-8 scalar
// stores along the elements it was built from. One H200 run, the same machine back to back
// (reports/benchmarks/nvidia-h200.md, "Stores of 16-byte packs"): rope T=4096x32x128 30.2 -> 22.9
// us, kv_cache_write 2-4% faster, the others unchanged but swiglu 81.0 -> 84.4 us: it keeps the split
// stores (WIDE = false), as the wide one gained it nothing.
template <typename T, int N, bool WIDE = true>
__device__ __forceinline__ void store_item(T *row, int64_t stride, int64_t item, const Pack<T, N> &p) {
    if constexpr (N == 1) {
        row[item * stride] = p.v[0];
    } else if constexpr (WIDE && sizeof(Pack<T, N>) == 16) {
        uint4 bits;
        memcpy(&bits, &p, sizeof bits);
        __stwb(reinterpret_cast<uint4 *>(row + item * N), bits);
    } else {
        *reinterpret_cast<Pack<T, N> *>(row + item * N) = p;
    }
}

// N consecutive elements of W starting at element `first` (unit stride, 16-byte aligned) when
// VEC, else N strided elements; widened to float.
template <typename W, int N, bool VEC>
__device__ __forceinline__ void load_floats(const W *base, int64_t stride, int64_t first, float (&f)[N]) {
    if constexpr (VEC) {
        constexpr int PER = 16 / (int)sizeof(W);  // elements per 16-byte load
        static_assert(N % PER == 0 || PER % N == 0, "pack width");
        if constexpr (N >= PER) {
#pragma unroll
            for (int j = 0; j < N / PER; ++j) {
                const Pack<W, PER> p = *reinterpret_cast<const Pack<W, PER> *>(base + first + j * PER);
#pragma unroll
                for (int e = 0; e < PER; ++e) f[j * PER + e] = q3::to_float(p.v[e]);
            }
        } else {
            const Pack<W, N> p = *reinterpret_cast<const Pack<W, N> *>(base + first);
#pragma unroll
            for (int e = 0; e < N; ++e) f[e] = q3::to_float(p.v[e]);
        }
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) f[e] = q3::to_float(base[(first + e) * stride]);
    }
}

// ---------------------------------------------------------------------------------------------
// Team reductions. G in 1..32 (a power of two): G consecutive lanes of a warp; G == 0: the whole
// block (blockDim.x a multiple of 32). Every thread of the warp/block must call them; every thread
// gets the same result, computed in a fixed order (deterministic).

template <int G, typename V, typename Op> __device__ __forceinline__ V team_reduce(V v, Op op) {
    if constexpr (G > 0) {
#pragma unroll
        for (int o = G / 2; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
        return v;
    } else {
        __shared__ V partial[32];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
        __syncthreads();  // an earlier reduction's readers are done with `partial`
        if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
        __syncthreads();
        V r = partial[0];
        const int warps = (int)(blockDim.x >> 5);
        for (int w = 1; w < warps; ++w) r = op(r, partial[w]);
        return r;
    }
}

struct SumOp {
    template <typename V> __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct MaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <int G> __device__ __forceinline__ double team_sum(double v) { return team_reduce<G>(v, SumOp()); }
template <int G> __device__ __forceinline__ float team_max(float v) { return team_reduce<G>(v, MaxOp()); }

// ---------------------------------------------------------------------------------------------
// The RMSNorm row (rms_norm, add_rms_norm) in Hugging Face Qwen3RMSNorm order:
// (x * rsqrt(mean(x^2) + eps)).to(T) * weight, the squares summed in double.

// The squares of a pack's elements, for the row's double total. A 16-bit value squares exactly in
// float and a pack's (at most 8) squares are summed there before they join the double total: a
// relative error below 2^-21 of the pack's part, far below the 16-bit output's half ulp (2^-9 at
// best), for an eighth of the float-to-double conversions; float32 elements are squared in double.
template <typename T, int N> __device__ __forceinline__ double pack_squares(const Pack<T, N> &p) {
    if constexpr (sizeof(T) < sizeof(float)) {
        float part = 0.0f;
#pragma unroll
        for (int e = 0; e < N; ++e) {
            const float v = q3::to_float(p.v[e]);
            part = fmaf(v, v, part);
        }
        return (double)part;
    } else {
        double total = 0.0;
#pragma unroll
        for (int e = 0; e < N; ++e) {
            const double v = q3::to_float(p.v[e]);
            total += v * v;
        }
        return total;
    }
}

// Every thread of the team passes its partial sum of squares and gets the row's 1 / rms.
template <int G> __device__ __forceinline__ float inverse_rms(double squares, int64_t cols, float eps) {
    squares = team_sum<G>(squares);
    const float mean = (float)(squares / (double)cols);
    return 1.0f / sqrtf(mean + eps);
}

// Writes the normalised row a team holds in registers: item lane + k * lanes in cache[k].
template <typename T, typename W, int N, int K>
__device__ __forceinline__ void store_rms_row(T *orow, int64_t os, const W *wd, int64_t ws,
                                              const Pack<T, N> (&cache)[K], bool valid, int lane, int lanes,
                                              int64_t items, float inverse_rms) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int64_t item = lane + (int64_t)k * lanes;
        if (valid && item < items) {
            float w[N];
            load_floats<W, N, (N > 1)>(wd, ws, item * N, w);
            Pack<T, N> o;
#pragma unroll
            for (int e = 0; e < N; ++e) {
                const float normed = q3::round_to<T>(q3::to_float(cache[k].v[e]) * inverse_rms);
                o.v[e] = q3::from_float<T>(normed * w[e]);
            }
            store_item<T, N>(orow, os, item, o);
        }
    }
}

// Element offset of flat row `row` (all dims but the last); cheap for collapsed layouts.
__device__ __forceinline__ int64_t row_offset(const q3_tensor &t, int64_t row) {
    if (t.ndim <= 1) return 0;
    if (t.ndim == 2) return row * t.strides[0];
    return q3::row_offset(t, row);
}

// ---------------------------------------------------------------------------------------------
// Host side.

// Merges adjacent dims of tensors that share a shape (all dims but the last when keep_last; all
// dims otherwise), dropping size-1 dims, so that flat row (element) offsets are unchanged and
// row_offset needs no division in the common case. Call only on non-empty tensors.
static inline void collapse(q3_tensor *const *ts, int count, bool keep_last) {
    const int nd = ts[0]->ndim;
    if (nd < 1) return;
    const int merged_dims = keep_last ? nd - 1 : nd;
    int64_t shape[Q3_MAX_DIMS];
    int64_t strides[4][Q3_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < merged_dims; ++d) {
        const int64_t s = ts[0]->shape[d];
        if (s == 1) continue;
        bool merge = m > 0;
        for (int i = 0; merge && i < count; ++i) merge = strides[i][m - 1] == ts[i]->strides[d] * s;
        if (merge) {
            shape[m - 1] *= s;
            for (int i = 0; i < count; ++i) strides[i][m - 1] = ts[i]->strides[d];
        } else {
            shape[m] = s;
            for (int i = 0; i < count; ++i) strides[i][m] = ts[i]->strides[d];
            ++m;
        }
    }
    if (!keep_last && m == 0) {  // a single element
        shape[0] = 1;
        for (int i = 0; i < count; ++i) strides[i][0] = 1;
        m = 1;
    }
    for (int i = 0; i < count; ++i) {
        q3_tensor *t = ts[i];
        const int64_t last_shape = t->shape[nd - 1], last_stride = t->strides[nd - 1];
        for (int d = 0; d < m; ++d) {
            t->shape[d] = shape[d];
            t->strides[d] = strides[i][d];
        }
        if (keep_last) {
            t->shape[m] = last_shape;
            t->strides[m] = last_stride;
            t->ndim = m + 1;
        } else {
            t->ndim = m;
        }
    }
}

// Fast-path test: unit-stride last dim, 16-byte aligned data, every other stride a multiple of
// `vec` elements (so every row starts 16-byte aligned).
static inline bool rows_vectorizable(const q3_tensor &t, int vec) {
    if (((uintptr_t)t.data & 15u) != 0) return false;
    if (t.ndim < 1 || t.strides[t.ndim - 1] != 1) return false;
    for (int d = 0; d + 1 < t.ndim; ++d) {
        if (t.shape[d] > 1 && t.strides[d] % vec != 0) return false;
    }
    return true;
}

// The multiprocessors of the current device into *sms: Q3_OK, or a status naming the operator.
static inline int sm_count(const char *op, int *sms) {
    return q3_cuda_device_attribute(op, cudaDevAttrMultiProcessorCount, sms);
}

// cudaMallocAsync on the stream. Once per device, the default pool is asked to keep up to 32 MiB
// across synchronisations (the release threshold defaults to 0), so that small per-call scratch
// buffers do not go back to the driver at every synchronize.
static inline cudaError_t scratch_alloc(void **ptr, size_t bytes, cudaStream_t stream) {
    static bool raised[64];
    int device = 0;
    if (cudaGetDevice(&device) == cudaSuccess && device >= 0 && device < 64 && !raised[device]) {
        raised[device] = true;
        cudaMemPool_t pool;
        uint64_t threshold = 0;
        if (cudaDeviceGetDefaultMemPool(&pool, device) != cudaSuccess ||
            cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold) != cudaSuccess) {
            cudaGetLastError();
        } else if (threshold < ((uint64_t)32 << 20)) {
            threshold = (uint64_t)32 << 20;
            if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold) != cudaSuccess) {
                cudaGetLastError();
            }
        }
    }
    return cudaMallocAsync(ptr, bytes, stream);
}

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How rows of `items` items are spread: `group` threads per row (1..32, rows packed 256 threads
// to a block) or, with group == 0, one block of `threads` per row; each thread holds up to `k`
// items in registers. False when a row does not fit (more than 4096 items).
constexpr int MAX_ROW_THREADS = 512;  // the __launch_bounds__ of the row kernels

struct RowPlan {
    int group, k, threads;
};

static inline bool plan_rows(int64_t items, bool small_groups, RowPlan *plan) {
    if (items <= 32) {
        int g = 1;
        while (g < items) g *= 2;
        *plan = RowPlan{small_groups ? g : 32, 1, 256};
        return true;
    }
    if (items <= 64) { *plan = RowPlan{32, 2, 256}; return true; }
    if (items <= 128) { *plan = RowPlan{32, 4, 256}; return true; }
    for (int k = 1; k <= 8; k *= 2) {
        const int64_t threads = ceil_div(items, k);
        if (threads <= 256 || (k == 8 && threads <= MAX_ROW_THREADS)) {
            *plan = RowPlan{0, k, (int)((threads + 31) / 32 * 32)};
            return true;
        }
    }
    return false;
}

// Runs the statement with the compile-time constants G and K of a RowPlan.
#define Q3R_DISPATCH_PLAN(plan, G, K, ...)                                                   \
    do {                                                                                     \
        const int q3r_g_ = (plan).group, q3r_k_ = (plan).k;                                  \
        if (q3r_g_ == 1) { constexpr int G = 1, K = 1; __VA_ARGS__; }                        \
        else if (q3r_g_ == 2) { constexpr int G = 2, K = 1; __VA_ARGS__; }                   \
        else if (q3r_g_ == 4) { constexpr int G = 4, K = 1; __VA_ARGS__; }                   \
        else if (q3r_g_ == 8) { constexpr int G = 8, K = 1; __VA_ARGS__; }                   \
        else if (q3r_g_ == 16) { constexpr int G = 16, K = 1; __VA_ARGS__; }                 \
        else if (q3r_g_ == 32 && q3r_k_ == 1) { constexpr int G = 32, K = 1; __VA_ARGS__; }  \
        else if (q3r_g_ == 32 && q3r_k_ == 2) { constexpr int G = 32, K = 2; __VA_ARGS__; }  \
        else if (q3r_g_ == 32) { constexpr int G = 32, K = 4; __VA_ARGS__; }                 \
        else if (q3r_k_ == 1) { constexpr int G = 0, K = 1; __VA_ARGS__; }                   \
        else if (q3r_k_ == 2) { constexpr int G = 0, K = 2; __VA_ARGS__; }                   \
        else if (q3r_k_ == 4) { constexpr int G = 0, K = 4; __VA_ARGS__; }                   \
        else { constexpr int G = 0, K = 8; __VA_ARGS__; }                                    \
    } while (0)

// Launch geometry of a row kernel for a plan: blocks of plan.threads (block mode) or 256 threads
// holding 256 / group rows each. Blocks loop over rows, so the grid is capped.
static inline void plan_grid(const RowPlan &plan, int64_t rows, dim3 *grid, dim3 *block) {
    const int64_t rows_per_block = plan.group == 0 ? 1 : 256 / plan.group;
    int64_t blocks = ceil_div(rows, rows_per_block);
    if (blocks > (int64_t)1 << 30) blocks = (int64_t)1 << 30;
    *grid = dim3((unsigned)blocks);
    *block = dim3((unsigned)(plan.group == 0 ? plan.threads : 256));
}

// plan_grid's grid capped at the blocks resident on the GPU at once: blocks then loop over several
// rows each, and a kernel that loads its next row before reducing the current one keeps memory
// busy through its reductions. Rows fewer than the `sms` multiprocessors skip the occupancy query.
template <typename Kernel> static inline dim3 resident_grid(Kernel kernel, dim3 grid, dim3 block, int sms) {
    if (grid.x <= (unsigned)sms) return grid;
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, (int)block.x, 0) != cudaSuccess || per_sm < 1) {
        cudaGetLastError();
        return grid;
    }
    const int64_t resident = (int64_t)per_sm * sms;
    if ((int64_t)grid.x > resident) grid.x = (unsigned)resident;
    return grid;
}

}  // namespace q3r
