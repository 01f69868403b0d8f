// Shared by the CUDA kernels: dtype conversion, dispatch on the dtype code, and the host-side
// helpers every entry point uses (device-pointer checks, index tensors read back for validation,
// launch-error reporting). Validation of dtypes, shapes and strides comes from host/.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "checks.h"
#include "qwen3_kernels.h"

namespace q3 {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// The value rounded to T and widened back: the precision an intermediate tensor of dtype T has.
template <typename T> __device__ __forceinline__ float round_to(float v) { return to_float(from_float<T>(v)); }

// Element offset of flattened row `row` (all dims but the last), as q3_row_offset on the host.
__device__ __forceinline__ int64_t row_offset(const q3_tensor &t, int64_t row) {
    int64_t offset = 0;
    for (int d = t.ndim - 2; d >= 0; --d) {
        offset += (row % t.shape[d]) * t.strides[d];
        row /= t.shape[d];
    }
    return offset;
}

__device__ __forceinline__ int64_t load_index(const q3_tensor &t, int64_t offset) {
    return t.dtype == Q3_I32 ? static_cast<const int32_t *>(t.data)[offset]
                             : static_cast<const int64_t *>(t.data)[offset];
}

}  // namespace q3

// Runs the statement with T bound to the C++ type of a float dtype code.
#define Q3_DISPATCH_FLOAT(code, T, ...)                      \
    switch (code) {                                          \
    case Q3_F32: { using T = float; __VA_ARGS__; } break;    \
    case Q3_F16: { using T = __half; __VA_ARGS__; } break;   \
    case Q3_BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break; \
    default: break;                                          \
    }

// Q3_OK, or Q3_LAUNCH_FAILED naming the operator and CUDA's message (cudaGetLastError).
int q3_cuda_launch_status(const char *op);

// An attribute of the current device into *value: Q3_OK, or Q3_LAUNCH_FAILED naming the operator
// when the device cannot be asked.
int q3_cuda_device_attribute(const char *op, cudaDeviceAttr attribute, int *value);

// Lets `kernel` take `bytes` of dynamic shared memory: Q3_OK, or Q3_LAUNCH_FAILED naming the operator.
int q3_cuda_reserve_shared_memory(const char *op, const void *kernel, size_t bytes);

// Q3_OK when the tensor's memory is device memory (or it is empty); a CPU tensor handed to the
// CUDA library is rejected with Q3_UNSUPPORTED instead of crashing the process.
int q3_cuda_check_device(const char *op, const char *name, const q3_tensor *t);

// Copies an int32/int64 tensor (any strides) to a malloc'd host array of numel int64 values in
// row-major order, on `stream` (and waits for it). NULL with *status set on failure.
int64_t *q3_cuda_indices_to_host(const char *op, const char *name, const q3_tensor *t, cudaStream_t stream,
                                 int *status);

// Copies a float32 tensor (any strides) to a malloc'd host array of numel floats, as above.
float *q3_cuda_floats_to_host(const char *op, const char *name, const q3_tensor *t, cudaStream_t stream,
                              int *status);
