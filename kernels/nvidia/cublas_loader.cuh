// cuBLAS loaded at run time (dlopen): no cuBLAS headers or libraries are needed to build. PyTorch's
// CUDA build has already loaded one into the process; we look for "libcublas.so.13", then ".so.12",
// then "libcublas.so". When none loads, q3_cublas_handle() returns NULL and callers take their own
// CUDA-core kernels instead (correct for any layout, slower).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

typedef void *q3_cublas_handle_t;  // cublasHandle_t, opaque

enum {
    Q3_CUDA_R_32F = 0,
    Q3_CUDA_R_16F = 2,
    Q3_CUDA_R_16BF = 14,
    Q3_CUBLAS_COMPUTE_32F = 68,  // full float32 accumulation (not TF32)
    Q3_CUBLAS_OP_N = 0,
    Q3_CUBLAS_OP_T = 1,
    Q3_CUBLAS_GEMM_DEFAULT = -1,
};

// The cuBLAS data type of a q3 float dtype code.
static inline int q3_cublas_type(int dtype) {
    return dtype == 1 ? Q3_CUDA_R_16F : dtype == 2 ? Q3_CUDA_R_16BF : Q3_CUDA_R_32F;
}

// A cuBLAS handle for the calling thread and current device, bound to `stream`; NULL when cuBLAS
// cannot be loaded or a handle cannot be created.
q3_cublas_handle_t q3_cublas_handle(cudaStream_t stream);

// Side streams for independent GEMMs (one handle, so one workspace, each): Q3_SIDE_STREAMS streams
// of the calling thread and current device, created once (non-blocking). q3_side_fork makes them
// wait for `stream`'s work so far, q3_side_join makes `stream` wait for theirs. Fork returns false
// (and nothing is to be run on the side) when the streams or events cannot be created.
#define Q3_SIDE_STREAMS 4
bool q3_side_fork(cudaStream_t stream, cudaStream_t side[Q3_SIDE_STREAMS],
                  q3_cublas_handle_t handles[Q3_SIDE_STREAMS]);
void q3_side_join(cudaStream_t stream);

// Column-major C (m x n) = alpha * op(A) op(B) + beta * C with float32 compute (cublasGemmEx).
// Returns the cuBLAS status (0 = success).
int q3_cublas_gemm(q3_cublas_handle_t handle, int transa, int transb, int64_t m, int64_t n, int64_t k,
                   float alpha, const void *a, int a_type, int64_t lda, const void *b, int b_type, int64_t ldb,
                   float beta, void *c, int c_type, int64_t ldc);

// How a logical rows x cols matrix, element (i, j) at i * rs + j * cs, can be a cuBLAS operand
// op(X) of that size: op = N (column-major, ld = cs) or T (row-major, ld = rs). False when neither
// fits (no unit stride, overlapping rows, sizes or leading dims beyond int).
bool q3_cublas_operand(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *op, int64_t *ld);

// The same for an output: only column-major (op N) will do.
bool q3_cublas_output(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t *ld);
