// Fused residual add + RMSNorm, as Qwen3 decoder layers chain them:
// sum = x + residual (rounded to x's dtype); out = rms_norm(sum, weight, eps), normalised from the
// rounded sum. Rows are held in registers (x and residual read once, sum and out written once): a
// team of 1..32 lanes per short row, a block per long row; rows beyond 4096 items read sum back.
#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

template <typename T, typename W, int N, int G, int K>
__global__ void __launch_bounds__(MAX_ROW_THREADS) add_rms_rows(q3_tensor out, q3_tensor sum, q3_tensor x, q3_tensor residual,
                                                     q3_tensor weight, int64_t rows, int64_t cols, float eps) {
    const int lanes = G > 0 ? G : (int)blockDim.x;
    const int lane = G > 0 ? (int)(threadIdx.x % G) : (int)threadIdx.x;
    const int64_t rows_per_block = G > 0 ? (int64_t)(blockDim.x / G) : 1;
    const int64_t items = cols / N;
    const T *xd = static_cast<const T *>(x.data);
    const T *rd = static_cast<const T *>(residual.data);
    T *sd = static_cast<T *>(sum.data);
    T *od = static_cast<T *>(out.data);
    const W *wd = static_cast<const W *>(weight.data);
    const int last = x.ndim - 1;
    const int64_t xs = x.strides[last], rs = residual.strides[last], ss = sum.strides[last],
                  os = out.strides[last], ws = weight.strides[0];
    for (int64_t base = (int64_t)blockIdx.x * rows_per_block; base < rows;
         base += (int64_t)gridDim.x * rows_per_block) {
        const int64_t row = base + (G > 0 ? (int64_t)(threadIdx.x / G) : 0);
        const bool valid = row < rows;
        const T *xr = xd + (valid ? row_offset(x, row) : 0);
        const T *rr = rd + (valid ? row_offset(residual, row) : 0);
        T *sr = sd + (valid ? row_offset(sum, row) : 0);
        Pack<T, N> cache[K];  // the rounded sum
        double squares = 0.0;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int64_t item = lane + (int64_t)k * lanes;
            if (valid && item < items) {
                const Pack<T, N> a = load_item<T, N>(xr, xs, item);
                const Pack<T, N> b = load_item<T, N>(rr, rs, item);
#pragma unroll
                for (int e = 0; e < N; ++e) {
                    cache[k].v[e] = q3::from_float<T>(q3::to_float(a.v[e]) + q3::to_float(b.v[e]));
                }
                squares += pack_squares<T, N>(cache[k]);
                store_item<T, N>(sr, ss, item, cache[k]);
            }
        }
        const float inv = inverse_rms<G>(squares, cols, eps);
        T *orow = od + (valid ? row_offset(out, row) : 0);
        store_rms_row<T, W, N, K>(orow, os, wd, ws, cache, valid, lane, lanes, items, inv);
    }
}

// Rows too long for registers: one block per row; the second pass reads back the sum this
// thread wrote (strided element access).
template <typename T, typename W>
__global__ void __launch_bounds__(256) add_rms_long_rows(q3_tensor out, q3_tensor sum, q3_tensor x,
                                                         q3_tensor residual, q3_tensor weight, int64_t rows,
                                                         int64_t cols, float eps) {
    const T *xd = static_cast<const T *>(x.data);
    const T *rd = static_cast<const T *>(residual.data);
    T *sd = static_cast<T *>(sum.data);
    T *od = static_cast<T *>(out.data);
    const W *wd = static_cast<const W *>(weight.data);
    const int last = x.ndim - 1;
    const int64_t xs = x.strides[last], rs = residual.strides[last], ss = sum.strides[last],
                  os = out.strides[last], ws = weight.strides[0];
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T *xr = xd + row_offset(x, row);
        const T *rr = rd + row_offset(residual, row);
        T *sr = sd + row_offset(sum, row);
        T *orow = od + row_offset(out, row);
        double squares = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const T s = q3::from_float<T>(q3::to_float(xr[c * xs]) + q3::to_float(rr[c * rs]));
            sr[c * ss] = s;
            const double v = q3::to_float(s);
            squares += v * v;
        }
        const float inv = inverse_rms<0>(squares, cols, eps);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const float normed = q3::round_to<T>(q3::to_float(sr[c * ss]) * inv);
            orow[c * os] = q3::from_float<T>(normed * q3::to_float(wd[c * ws]));
        }
    }
}

template <typename T, typename W>
void launch(const q3_tensor &out, const q3_tensor &sum, const q3_tensor &x, const q3_tensor &residual,
            const q3_tensor &weight, int64_t rows, int64_t cols, float eps, cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    const bool vec = cols % V == 0 && rows_vectorizable(x, V) && rows_vectorizable(residual, V) &&
                     rows_vectorizable(sum, V) && rows_vectorizable(out, V) && rows_vectorizable(weight, V);
    RowPlan plan;
    if (!plan_rows(vec ? cols / V : cols, vec, &plan)) {
        const int64_t blocks = rows < ((int64_t)1 << 30) ? rows : ((int64_t)1 << 30);
        add_rms_long_rows<T, W><<<(unsigned)blocks, 256, 0, stream>>>(out, sum, x, residual, weight, rows, cols,
                                                                        eps);
        return;
    }
    dim3 grid, block;
    plan_grid(plan, rows, &grid, &block);
    if (vec) {
        Q3R_DISPATCH_PLAN(plan, G, K, add_rms_rows<T, W, V, G, K><<<grid, block, 0, stream>>>(
                                          out, sum, x, residual, weight, rows, cols, eps));
    } else {
        Q3R_DISPATCH_PLAN(plan, G, K, add_rms_rows<T, W, 1, G, K><<<grid, block, 0, stream>>>(
                                          out, sum, x, residual, weight, rows, cols, eps));
    }
}

}  // namespace

int q3_add_rms_norm(q3_tensor out, q3_tensor sum, q3_tensor x, q3_tensor residual, q3_tensor weight, double eps,
                    void *stream) {
    Q3_ENTER("add_rms_norm", q3_check_add_rms_norm_call(op, &out, &sum, &x, &residual, &weight, eps));

    const int64_t rows = q3_rows(&x), cols = x.shape[x.ndim - 1];
    if (rows == 0 || cols == 0) return Q3_OK;
    q3_tensor *const tensors[] = {&out, &sum, &x, &residual};
    collapse(tensors, 4, true);
    cudaStream_t s = (cudaStream_t)stream;
    Q3_DISPATCH_FLOAT(x.dtype, T,
        if (weight.dtype == Q3_F32) launch<T, float>(out, sum, x, residual, weight, rows, cols, (float)eps, s);
        else launch<T, T>(out, sum, x, residual, weight, rows, cols, (float)eps, s));
    return q3_cuda_launch_status(op);
}
