// Linear layer: out[..., n] = sum_k x[..., k] * weight[n, k] (+ bias[n]), float32 accumulation,
// rounded once to the dtype.
//
// Which path runs:
//  - cuBLAS (cublasGemmEx, CUBLAS_COMPUTE_32F: full float32, no TF32) whenever it is loaded and every
//    operand is a matrix cuBLAS can address: x's leading dims collapse to one row stride and x has a
//    unit stride along rows or along k; the same for weight; out is unit-stride along n or along rows
//    (the problem is then posed as out^T = W x^T or out = x W^T). Row-major, padded rows and fully
//    transposed (reversed) 2-D layouts all qualify. A bias is written into out first and the GEMM
//    runs with beta = 1, so acc + bias is rounded once in cuBLAS's float32 epilogue.
//    float32 takes cuBLAS only in PyTorch's own form (x, weight and out unit-stride along k / n):
//    cuBLAS's float32 kernels for the other transpose combinations were measured 5x less accurate.
//  - otherwise (layouts with no unit stride, non-collapsible leading dims, broadcast rows, cuBLAS
//    absent or refusing the call, float32 outside the form above): the tiled CUDA-core GEMM of
//    gemm_tiles.cuh, any strides, accumulating in double for float32 and float for f16/bf16.
#include "common.cuh"
#include "entry.h"
#include "cublas_loader.cuh"
#include "gemm_tiles.cuh"

namespace {

// The one stride that steps between consecutive flattened rows (all dims but the last), if any.
bool collapse_rows(const q3_tensor &t, int64_t *row_stride) {
    *row_stride = 0;
    int64_t expected = -1;
    for (int d = t.ndim - 2; d >= 0; --d) {
        if (t.shape[d] == 1) continue;
        if (expected < 0) {
            *row_stride = t.strides[d];
        } else if (t.strides[d] != expected) {
            return false;
        }
        expected = t.strides[d] * t.shape[d];
    }
    return true;
}

// out[row, n] = bias[n] (or 0) for every element of the view.
template <typename T>
__global__ void fill_rows_kernel(q3_tensor out, q3_tensor bias, int has_bias, int64_t rows, int64_t n_count) {
    const int64_t n = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= n_count) return;
    const T value = has_bias ? static_cast<const T *>(bias.data)[n * bias.strides[0]] : q3::from_float<T>(0.0f);
    const int64_t col = n * out.strides[out.ndim - 1];
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        static_cast<T *>(out.data)[q3::row_offset(out, row) + col] = value;
    }
}

void launch_fill(const q3_tensor &out, const q3_tensor &bias, int has_bias, int64_t rows, int64_t n,
                 cudaStream_t stream) {
    const int threads = 256;
    const int64_t blocks_x = (n + threads - 1) / threads;
    const int64_t blocks_y = rows < 65535 ? rows : 65535;
    Q3_DISPATCH_FLOAT(out.dtype, T,
                      fill_rows_kernel<T><<<dim3((unsigned)blocks_x, (unsigned)blocks_y), threads, 0, stream>>>(
                          out, bias, has_bias, rows, n));
}

// Tries cuBLAS; true when the GEMM was issued (out then holds, once the stream runs, the result).
bool linear_cublas(const q3_tensor &out, const q3_tensor &x, const q3_tensor &w, const q3_tensor &bias,
                   int has_bias, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
    q3_cublas_handle_t handle = q3_cublas_handle(stream);
    if (handle == nullptr) return false;
    int64_t x_rs = 0, out_rs = 0;
    if (!collapse_rows(x, &x_rs) || !collapse_rows(out, &out_rs)) return false;
    const int64_t x_ks = x.strides[x.ndim - 1], out_ns = out.strides[out.ndim - 1];
    const int64_t w_ns = w.strides[0], w_ks = w.strides[1];
    const int type = q3_cublas_type(x.dtype);
    int op_a = 0, op_b = 0;
    int64_t lda = 0, ldb = 0, ldc = 0;
    const void *a = nullptr, *b = nullptr;
    int64_t m = 0, n = 0;
    if ((x_ks == 1 || K == 1) && (w_ks == 1 || K == 1) && (out_ns == 1 || N == 1)) {
        // The form PyTorch uses for row-major tensors: out^T (N x M) = op_T(W) op_N(x^T). For float32
        // the only one taken: cuBLAS's float32 kernels for other transpose combinations accumulate
        // long k runs serially (several times the error); the tiled kernel accumulates in double.
        op_a = Q3_CUBLAS_OP_T, op_b = Q3_CUBLAS_OP_N;
        lda = N > 1 ? w_ns : K, ldb = M > 1 ? x_rs : K, ldc = M > 1 ? out_rs : N;
        a = w.data, b = x.data, m = N, n = M;
        if (lda < K || ldb < K || ldc < N) a = nullptr;
    }
    if (a == nullptr && x.dtype == Q3_F32) return false;
    if (a != nullptr) {
        // taken above
    } else if (q3_cublas_output(N, M, out_ns, out_rs, &ldc) && q3_cublas_operand(N, K, w_ns, w_ks, &op_a, &lda) &&
               q3_cublas_operand(K, M, x_ks, x_rs, &op_b, &ldb)) {
        // out^T (N x M, column-major) = W (N x K) x^T (K x M).
        a = w.data, b = x.data, m = N, n = M;
    } else if (q3_cublas_output(M, N, out_rs, out_ns, &ldc) && q3_cublas_operand(M, K, x_rs, x_ks, &op_a, &lda) &&
               q3_cublas_operand(K, N, w_ks, w_ns, &op_b, &ldb)) {
        // out (M x N, column-major) = x (M x K) W^T (K x N).
        a = x.data, b = w.data, m = M, n = N;
    } else {
        return false;
    }
    if (has_bias) launch_fill(out, bias, 1, M, N, stream);
    const int status = q3_cublas_gemm(handle, op_a, op_b, m, n, K, 1.0f, a, type, lda, b, type, ldb,
                                      has_bias ? 1.0f : 0.0f, out.data, type, ldc);
    return status == 0;
}

}  // namespace

int q3_linear_compute(const char *op, q3_tensor out, q3_tensor x, q3_tensor weight, q3_tensor bias,
                      cudaStream_t stream) {
    const int has_bias = bias.data != NULL;
    const int64_t M = q3_rows(&x), N = weight.shape[0], K = weight.shape[1];
    if (M == 0 || N == 0) return Q3_OK;
    if (K == 0) {
        launch_fill(out, bias, has_bias, M, N, stream);
        return q3_cuda_launch_status(op);
    }
    if (!linear_cublas(out, x, weight, bias, has_bias, M, N, K, stream)) {
        const int64_t tiles = (M + q3gemm::kBM - 1) / q3gemm::kBM;
        Q3_DISPATCH_FLOAT(x.dtype, T,
                          q3gemm::LinearProblem<T> p = {x, weight, out, bias, has_bias, M, N, K};
                          q3gemm::launch_tiled_gemm(p, tiles, N, stream));
    }
    return q3_cuda_launch_status(op);
}

int q3_linear(q3_tensor out, q3_tensor x, q3_tensor weight, q3_tensor bias, void *stream) {
    Q3_ENTER("linear", q3_check_linear_call(op, &out, &x, &weight, &bias));
    return q3_linear_compute(op, out, x, weight, bias, (cudaStream_t)stream);
}
