// Host-side helpers of the CUDA library (see common.cuh).
#include <stdlib.h>
#include <string.h>

#include "common.cuh"
#include "entry.h"

int q3_cuda_launch_status(const char *op) {
    cudaError_t error = cudaGetLastError();
    if (error == cudaSuccess) return Q3_OK;
    return q3_fail(error == cudaErrorMemoryAllocation ? Q3_OUT_OF_MEMORY : Q3_LAUNCH_FAILED, op,
                   "CUDA error %s: %s", cudaGetErrorName(error), cudaGetErrorString(error));
}

int q3_cuda_device_attribute(const char *op, cudaDeviceAttr attribute, int *value) {
    int device = 0;
    cudaError_t error = cudaGetDevice(&device);
    if (error == cudaSuccess) error = cudaDeviceGetAttribute(value, attribute, device);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_LAUNCH_FAILED, op, "cannot query the device: %s", cudaGetErrorString(error));
    }
    return Q3_OK;
}

int q3_cuda_reserve_shared_memory(const char *op, const void *kernel, size_t bytes) {
    cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_LAUNCH_FAILED, op, "cannot reserve %zu bytes of shared memory: %s", bytes,
                       cudaGetErrorString(error));
    }
    return Q3_OK;
}

int q3_cuda_check_device(const char *op, const char *name, const q3_tensor *t) {
    if (t->data == NULL || q3_numel(t) == 0) return Q3_OK;
    cudaPointerAttributes attributes;
    cudaError_t error = cudaPointerGetAttributes(&attributes, t->data);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_UNSUPPORTED, op, "tensor '%s' is not in CUDA memory (%s)", name, cudaGetErrorString(error));
    }
    if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) {
        return q3_fail(Q3_UNSUPPORTED, op, "tensor '%s' is in host memory; the CUDA library needs device tensors",
                       name);
    }
    return Q3_OK;
}

// Opens every entry point: a launch error the runtime still holds from someone else's call (a failed
// graph capture of PyTorch, say) is dropped, so that q3_cuda_launch_status reports this call's own.
// An error that breaks the context stays and comes back at the next call.
int q3_check_stream(const char *, const void *) {
    cudaGetLastError();
    return Q3_OK;
}

int q3_check_memory(const char *op, const q3_named_tensor *tensors, int count) {
    for (int i = 0; i < count; ++i) {
        const int status = q3_cuda_check_device(op, tensors[i].name, tensors[i].tensor);
        if (status != Q3_OK) return status;
    }
    return Q3_OK;
}

static void *copy_extent(const char *op, const char *name, const q3_tensor *t, size_t element, cudaStream_t stream,
                         int *status) {
    int64_t span = q3_extent(t);
    void *host = malloc((size_t)(span > 0 ? span : 1) * element);
    if (host == NULL) {
        *status = q3_fail(Q3_OUT_OF_MEMORY, op, "cannot copy tensor '%s' to the host", name);
        return NULL;
    }
    if (span > 0) {
        cudaError_t error = cudaMemcpyAsync(host, t->data, (size_t)span * element, cudaMemcpyDeviceToHost, stream);
        if (error == cudaSuccess) error = cudaStreamSynchronize(stream);
        if (error != cudaSuccess) {
            free(host);
            *status = q3_fail(Q3_LAUNCH_FAILED, op, "reading tensor '%s' back failed: %s", name,
                              cudaGetErrorString(error));
            return NULL;
        }
    }
    *status = Q3_OK;
    return host;
}

// Offset of the i-th element in row-major logical order.
static int64_t logical_offset(const q3_tensor *t, int64_t index) {
    int64_t offset = 0;
    for (int d = t->ndim - 1; d >= 0; --d) {
        offset += (index % t->shape[d]) * t->strides[d];
        index /= t->shape[d];
    }
    return offset;
}

// Room for the numel(t) values of a tensor read back into `raw`; NULL (raw freed, *status set) when
// the allocation fails.
static void *host_values(const char *op, const char *name, const q3_tensor *t, size_t element, void *raw,
                         int *status) {
    const int64_t count = q3_numel(t);
    void *values = malloc(element * (size_t)(count > 0 ? count : 1));
    if (values == NULL) {
        free(raw);
        *status = q3_fail(Q3_OUT_OF_MEMORY, op, "cannot copy tensor '%s' to the host", name);
    }
    return values;
}

int64_t *q3_cuda_indices_to_host(const char *op, const char *name, const q3_tensor *t, cudaStream_t stream,
                                 int *status) {
    size_t element = (size_t)q3_dtype_bytes(t->dtype);
    char *raw = (char *)copy_extent(op, name, t, element, stream, status);
    if (raw == NULL) return NULL;
    int64_t *values = (int64_t *)host_values(op, name, t, sizeof(int64_t), raw, status);
    if (values == NULL) return NULL;
    for (int64_t i = 0; i < q3_numel(t); ++i) {
        int64_t offset = logical_offset(t, i);
        values[i] = t->dtype == Q3_I32 ? ((int32_t *)raw)[offset] : ((int64_t *)raw)[offset];
    }
    free(raw);
    return values;
}

float *q3_cuda_floats_to_host(const char *op, const char *name, const q3_tensor *t, cudaStream_t stream,
                              int *status) {
    float *raw = (float *)copy_extent(op, name, t, sizeof(float), stream, status);
    if (raw == NULL) return NULL;
    float *values = (float *)host_values(op, name, t, sizeof(float), raw, status);
    if (values == NULL) return NULL;
    for (int64_t i = 0; i < q3_numel(t); ++i) values[i] = raw[logical_offset(t, i)];
    free(raw);
    return values;
}
