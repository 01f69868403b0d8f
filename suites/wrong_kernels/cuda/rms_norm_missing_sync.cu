// rms_norm whose shared-memory tree reduction has no __syncthreads() (a race between warps).
#include "common.cuh"

namespace {

constexpr int THREADS = 256;

template <typename T, typename W>
__global__ void rms_norm_kernel(q3_tensor out, q3_tensor x, q3_tensor weight, int64_t cols, float eps) {
    __shared__ float partial[THREADS];
    __shared__ float inverse_rms;
    const int64_t row = blockIdx.x;
    const T *in = static_cast<const T *>(x.data) + q3::row_offset(x, row);
    T *dst = static_cast<T *>(out.data) + q3::row_offset(out, row);
    const int64_t xs = x.strides[x.ndim - 1], os = out.strides[out.ndim - 1];
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += THREADS) {
        const float v = q3::to_float(in[c * xs]);
        sum += v * v;
    }
    partial[threadIdx.x] = sum;
    // BUG: no __syncthreads() here nor after each step: a thread may read a partial sum another warp
    // has not yet written or added to.
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    }
    if (threadIdx.x == 0) inverse_rms = rsqrtf(partial[0] / (float)cols + eps);
    __syncthreads();
    const W *w = static_cast<const W *>(weight.data);
    for (int64_t c = threadIdx.x; c < cols; c += THREADS) {
        const float normed = q3::round_to<T>(q3::to_float(in[c * xs]) * inverse_rms);
        dst[c * os] = q3::from_float<T>(q3::to_float(w[c * weight.strides[0]]) * normed);
    }
}

}  // namespace

int q3_rms_norm(q3_tensor out, q3_tensor x, q3_tensor weight, double eps, void *stream) {
    static const char op[] = "rms_norm";
    int status;
    q3_clear_error();
    if ((status = q3_check_float(op, "x", &x)) != Q3_OK) return status;
    if ((status = q3_check_ndim(op, "weight", &weight, 1)) != Q3_OK) return status;
    if ((status = q3_check_weight_dtype(op, "weight", &weight, &x)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "out", &out, "x", &x)) != Q3_OK) return status;
    if ((status = q3_check_same_shape(op, "out", &out, "x", &x)) != Q3_OK) return status;
    if ((status = q3_cuda_check_device(op, "x", &x)) != Q3_OK) return status;
    const int64_t rows = q3_rows(&x), cols = x.shape[x.ndim - 1];
    if (rows == 0 || cols == 0) return Q3_OK;
    cudaStream_t s = (cudaStream_t)stream;
    Q3_DISPATCH_FLOAT(x.dtype, T,
        if (weight.dtype == Q3_F32) rms_norm_kernel<T, float><<<(unsigned)rows, THREADS, 0, s>>>(out, x, weight, cols, (float)eps);
        else rms_norm_kernel<T, T><<<(unsigned)rows, THREADS, 0, s>>>(out, x, weight, cols, (float)eps));
    return q3_cuda_launch_status(op);
}
