// swiglu whose grid is rounded down: numel / 256 blocks, so the last partial block of elements is
// never written (the classic missing ceil_div).
#include "common.cuh"

namespace {

// Element offset of logical element i (row-major order) of a strided tensor.
__device__ int64_t element_offset(const q3_tensor &t, int64_t i) {
    int64_t offset = 0;
    for (int d = t.ndim - 1; d >= 0; --d) {
        offset += (i % t.shape[d]) * t.strides[d];
        i /= t.shape[d];
    }
    return offset;
}

template <typename T> __global__ void swiglu_kernel(q3_tensor out, q3_tensor gate, q3_tensor up, int64_t total) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const float g = q3::to_float(static_cast<const T *>(gate.data)[element_offset(gate, i)]);
    const float u = q3::to_float(static_cast<const T *>(up.data)[element_offset(up, i)]);
    static_cast<T *>(out.data)[element_offset(out, i)] = q3::from_float<T>(g / (1.0f + expf(-g)) * u);
}

}  // namespace

int q3_swiglu(q3_tensor out, q3_tensor gate, q3_tensor up, void *stream) {
    static const char op[] = "swiglu";
    int status;
    q3_clear_error();
    if ((status = q3_check_float(op, "gate", &gate)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "up", &up, "gate", &gate)) != Q3_OK) return status;
    if ((status = q3_check_same_shape(op, "up", &up, "gate", &gate)) != Q3_OK) return status;
    if ((status = q3_check_same_dtype(op, "out", &out, "gate", &gate)) != Q3_OK) return status;
    if ((status = q3_check_same_shape(op, "out", &out, "gate", &gate)) != Q3_OK) return status;
    if ((status = q3_cuda_check_device(op, "out", &out)) != Q3_OK) return status;
    const int64_t total = q3_numel(&gate);
    const int64_t blocks = total / 256;  // BUG: should be (total + 255) / 256
    if (blocks > 0) {
        Q3_DISPATCH_FLOAT(gate.dtype, T,
            swiglu_kernel<T><<<(unsigned)blocks, 256, 0, (cudaStream_t)stream>>>(out, gate, up, total));
    }
    return q3_cuda_launch_status(op);
}
