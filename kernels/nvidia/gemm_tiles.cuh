// The CUDA-core GEMM of the gemm group (linear, moe_router, moe_experts): C[m, n] = sum_k A(m, k) B(n, k)
// in 64 x 64 shared-memory tiles with float32 accumulation, for any strides. It runs where cuBLAS
// cannot: layouts without a unit stride in either dim, or no cuBLAS in the process.
#pragma once

#include <type_traits>

#include "common.cuh"

namespace q3gemm {

// The accumulator: double for float32 data (a serial float sum over long k runs errs several
// times more than cuBLAS's blocked float32 kernels), float for f16/bf16 (the output's rounding
// dominates).
template <typename T>
using Accumulator = typename std::conditional<std::is_same<T, float>::value, double, float>::type;

__device__ __forceinline__ float mad(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double mad(double a, double b, double c) { return fma(a, b, c); }

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;
constexpr int kMaxGridY = 65535;

// A problem P provides:
//   int64_t N, K;
//   bool tile(int64_t bx, int64_t &m0, int64_t &m_end, int &group) const;  (rows of block bx)
//   int64_t a_row(int group, int64_t m) const;  int64_t c_row(int group, int64_t m) const;
//   float a(int group, int64_t row_offset, int64_t k) const;  float b(int group, int64_t n, int64_t k) const;
//   void store(int group, int64_t row_offset, int64_t m, int64_t n, Acc acc) const;  (P::Acc: float or double)
template <class P>
__global__ void __launch_bounds__(kThreads) tiled_gemm_kernel(P p) {
    __shared__ __align__(16) float as[kBK][kBM + 4];
    __shared__ __align__(16) float bs[kBK][kBN + 4];
    __shared__ int64_t a_off[kBM], c_off[kBM];
    int64_t m0 = 0, m_end = 0;
    int group = 0;
    if (!p.tile(blockIdx.x, m0, m_end, group)) return;  // uniform over the block
    const int tid = threadIdx.x;
    if (tid < kBM) {
        const int64_t m = m0 + tid;
        a_off[tid] = m < m_end ? p.a_row(group, m) : 0;
        c_off[tid] = m < m_end ? p.c_row(group, m) : 0;
    }
    __syncthreads();
    const int tx = tid % 16, ty = tid / 16;
    for (int64_t n0 = (int64_t)blockIdx.y * kBN; n0 < p.N; n0 += (int64_t)gridDim.y * kBN) {
        using Acc = typename P::Acc;
        Acc acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = 0;
        for (int64_t k0 = 0; k0 < p.K; k0 += kBK) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int e = tid + kThreads * i;
                const int r = e >> 4, kk = e & 15;
                const int64_t k = k0 + kk, m = m0 + r, n = n0 + r;
                as[kk][r] = (m < m_end && k < p.K) ? p.a(group, a_off[r], k) : 0.0f;
                bs[kk][r] = (n < p.N && k < p.K) ? p.b(group, n, k) : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < kBK; ++kk) {
                const float4 av = *reinterpret_cast<const float4 *>(&as[kk][ty * 4]);
                const float4 bv = *reinterpret_cast<const float4 *>(&bs[kk][tx * 4]);
                const Acc a4[4] = {(Acc)av.x, (Acc)av.y, (Acc)av.z, (Acc)av.w};
                const Acc b4[4] = {(Acc)bv.x, (Acc)bv.y, (Acc)bv.z, (Acc)bv.w};
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = mad(a4[i], b4[j], acc[i][j]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t m = m0 + ty * 4 + i;
            if (m >= m_end) continue;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int64_t n = n0 + tx * 4 + j;
                if (n < p.N) p.store(group, c_off[ty * 4 + i], m, n, acc[i][j]);
            }
        }
    }
}

// out[..., n] = sum_k x[..., k] w[n, k] (+ bias[n]) for any strides, rounded once to T.
template <typename T>
struct LinearProblem {
    using Acc = Accumulator<T>;
    q3_tensor x, w, out, bias;
    int has_bias;
    int64_t M, N, K;

    __device__ bool tile(int64_t bx, int64_t &m0, int64_t &m_end, int &group) const {
        m0 = bx * kBM;
        m_end = m0 + kBM < M ? m0 + kBM : M;
        group = 0;
        return m0 < M;
    }
    __device__ int64_t a_row(int, int64_t m) const { return q3::row_offset(x, m); }
    __device__ int64_t c_row(int, int64_t m) const { return q3::row_offset(out, m); }
    __device__ float a(int, int64_t row, int64_t k) const {
        return q3::to_float(static_cast<const T *>(x.data)[row + k * x.strides[x.ndim - 1]]);
    }
    __device__ float b(int, int64_t n, int64_t k) const {
        return q3::to_float(static_cast<const T *>(w.data)[n * w.strides[0] + k * w.strides[1]]);
    }
    __device__ void store(int, int64_t row, int64_t, int64_t n, Acc acc) const {
        if (has_bias) acc += (Acc)q3::to_float(static_cast<const T *>(bias.data)[n * bias.strides[0]]);
        static_cast<T *>(out.data)[row + n * out.strides[out.ndim - 1]] = q3::from_float<T>((float)acc);
    }
};

// One tile of a grouped GEMM: rows [m0, m_end) of group `group`.
struct GroupTile {
    int32_t group, m0, m_end, pad;
};

// Grouped: C[m, n] (float32, row stride ldc) = sum_k A[m, k] (TA, row stride lda) W[g, n, k] (TW, any
// strides), m in the rows of group g, tiles listed in `tiles`.
template <typename TA, typename TW>
struct GroupedProblem {
    using Acc = Accumulator<TA>;
    const GroupTile *tiles;
    const TA *a_data;
    int64_t lda;
    q3_tensor w;
    float *c_data;
    int64_t ldc;
    int64_t N, K;

    __device__ bool tile(int64_t bx, int64_t &m0, int64_t &m_end, int &group) const {
        const GroupTile t = tiles[bx];
        m0 = t.m0;
        m_end = t.m_end;
        group = t.group;
        return true;
    }
    __device__ int64_t a_row(int, int64_t m) const { return m * lda; }
    __device__ int64_t c_row(int, int64_t m) const { return m * ldc; }
    __device__ float a(int, int64_t row, int64_t k) const { return q3::to_float(a_data[row + k]); }
    __device__ float b(int g, int64_t n, int64_t k) const {
        return q3::to_float(static_cast<const TW *>(w.data)[g * w.strides[0] + n * w.strides[1] + k * w.strides[2]]);
    }
    __device__ void store(int, int64_t row, int64_t, int64_t n, Acc acc) const { c_data[row + n] = (float)acc; }
};

template <class P>
inline void launch_tiled_gemm(const P &p, int64_t tiles, int64_t n, cudaStream_t stream) {
    if (tiles <= 0 || n <= 0) return;
    int64_t blocks_y = (n + kBN - 1) / kBN;
    if (blocks_y > kMaxGridY) blocks_y = kMaxGridY;
    tiled_gemm_kernel<P><<<dim3((unsigned)tiles, (unsigned)blocks_y), kThreads, 0, stream>>>(p);
}

}  // namespace q3gemm

// The whole linear layer for validated device tensors (cuBLAS where the layout allows, the tiled
// kernel otherwise): out = x @ weight^T (+ bias), rounded once to the dtype. Defined in linear.cu;
// moe_router computes its logits with it. Returns a q3 status (errors recorded under `op`).
int q3_linear_compute(const char *op, q3_tensor out, q3_tensor x, q3_tensor weight, q3_tensor bias,
                      cudaStream_t stream);
