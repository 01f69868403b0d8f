// RMSNorm over the last dim, Hugging Face Qwen3RMSNorm order:
// out = (x * rsqrt(mean(x^2) + eps)).to(x.dtype) * weight, written in x's dtype.
// Rows are held in registers (x read once): a team of 1..32 lanes per short row (per-head q/k
// norm rows of 128), a block per long row; blocks loop over rows, loading the next while reducing
// the current one; rows beyond 4096 items are read twice.
#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

template <typename T, typename W, int N, int G, int K>
__global__ void __launch_bounds__(MAX_ROW_THREADS) rms_rows(q3_tensor out, q3_tensor x, q3_tensor weight, int64_t rows,
                                                 int64_t cols, float eps) {
    const int lanes = G > 0 ? G : (int)blockDim.x;
    const int lane = G > 0 ? (int)(threadIdx.x % G) : (int)threadIdx.x;
    const int64_t rows_per_block = G > 0 ? (int64_t)(blockDim.x / G) : 1;
    const int64_t items = cols / N;
    const T *xd = static_cast<const T *>(x.data);
    T *od = static_cast<T *>(out.data);
    const W *wd = static_cast<const W *>(weight.data);
    const int64_t xs = x.strides[x.ndim - 1], os = out.strides[out.ndim - 1], ws = weight.strides[0];
    // Short plans (K <= 2) load the block's next row while this one is reduced and written.
    constexpr bool PREFETCH = K <= 2;
    const int64_t stride = (int64_t)gridDim.x * rows_per_block;
    const int64_t team_row = G > 0 ? (int64_t)(threadIdx.x / G) : 0;
    auto load_row = [&](int64_t row, Pack<T, N>(&cache)[K]) {
        const T *xr = xd + (row < rows ? row_offset(x, row) : 0);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (row < rows && item < items) cache[k] = load_item<T, N>(xr, xs, item);
        }
    };
    Pack<T, N> cache[K];
    int64_t base = (int64_t)blockIdx.x * rows_per_block;
    if (PREFETCH) load_row(base + team_row, cache);
    for (; base < rows; base += stride) {
        const int64_t row = base + team_row;
        const bool valid = row < rows;
        Pack<T, N> next[K];
        if (PREFETCH) {
            load_row(row + stride, next);
        } else {
            load_row(row, cache);
        }
        double squares = 0.0;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (valid && item < items) squares += pack_squares<T, N>(cache[k]);
        }
        const float inv = inverse_rms<G>(squares, cols, eps);
        T *orow = od + (valid ? row_offset(out, row) : 0);
        store_rms_row<T, W, N, K>(orow, os, wd, ws, cache, valid, lane, lanes, items, inv);
        if (PREFETCH) {
#pragma unroll
            for (int k = 0; k < K; ++k) cache[k] = next[k];
        }
    }
}

// Rows too long for registers: one block per row, x read twice (strided element access).
template <typename T, typename W>
__global__ void __launch_bounds__(256) rms_long_rows(q3_tensor out, q3_tensor x, q3_tensor weight, int64_t rows,
                                                     int64_t cols, float eps) {
    const T *xd = static_cast<const T *>(x.data);
    T *od = static_cast<T *>(out.data);
    const W *wd = static_cast<const W *>(weight.data);
    const int64_t xs = x.strides[x.ndim - 1], os = out.strides[out.ndim - 1], ws = weight.strides[0];
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T *xr = xd + row_offset(x, row);
        T *orow = od + row_offset(out, row);
        double squares = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const double v = q3::to_float(xr[c * xs]);
            squares += v * v;
        }
        const float inv = inverse_rms<0>(squares, cols, eps);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const float normed = q3::round_to<T>(q3::to_float(xr[c * xs]) * inv);
            orow[c * os] = q3::from_float<T>(normed * q3::to_float(wd[c * ws]));
        }
    }
}

template <typename T, typename W>
void launch(const q3_tensor &out, const q3_tensor &x, const q3_tensor &weight, int64_t rows, int64_t cols,
            float eps, int sms, cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    const bool vec = cols % V == 0 && rows_vectorizable(x, V) && rows_vectorizable(out, V) &&
                     rows_vectorizable(weight, V);
    RowPlan plan;
    if (!plan_rows(vec ? cols / V : cols, vec, &plan)) {
        const int64_t blocks = rows < ((int64_t)1 << 30) ? rows : ((int64_t)1 << 30);
        rms_long_rows<T, W><<<(unsigned)blocks, 256, 0, stream>>>(out, x, weight, rows, cols, eps);
        return;
    }
    dim3 grid, block;
    plan_grid(plan, rows, &grid, &block);
    if (vec) {
        Q3R_DISPATCH_PLAN(plan, G, K, rms_rows<T, W, V, G, K><<<resident_grid(rms_rows<T, W, V, G, K>, grid, block, sms),
                                                                block, 0, stream>>>(out, x, weight, rows, cols, eps));
    } else {
        Q3R_DISPATCH_PLAN(plan, G, K, rms_rows<T, W, 1, G, K><<<resident_grid(rms_rows<T, W, 1, G, K>, grid, block, sms),
                                                                block, 0, stream>>>(out, x, weight, rows, cols, eps));
    }
}

}  // namespace

int q3_rms_norm(q3_tensor out, q3_tensor x, q3_tensor weight, double eps, void *stream) {
    Q3_ENTER("rms_norm", q3_check_rms_norm_call(op, &out, &x, &weight, eps));

    const int64_t rows = q3_rows(&x), cols = x.shape[x.ndim - 1];
    if (rows == 0 || cols == 0) return Q3_OK;
    int sms = 0;
    if ((status = sm_count(op, &sms)) != Q3_OK) return status;
    q3_tensor *const tensors[] = {&out, &x};
    collapse(tensors, 2, true);
    cudaStream_t s = (cudaStream_t)stream;
    Q3_DISPATCH_FLOAT(x.dtype, T,
        if (weight.dtype == Q3_F32) launch<T, float>(out, x, weight, rows, cols, (float)eps, sms, s);
        else launch<T, T>(out, x, weight, rows, cols, (float)eps, sms, s));
    return q3_cuda_launch_status(op);
}
