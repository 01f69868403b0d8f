// Index tensors (token ids, cache positions, slots) checked on the device before a kernel uses
// them: one kernel on the caller's stream tests every index against [0, limit) and, per group,
// for repeats (a bitmap over the range, one atomicOr per index), and raises a device flag; the
// flag is the only thing read back. It says only whether something is wrong: the caller then
// reads the indices back and checks them on the host, which names the offending index.
#pragma once

#include <stdint.h>

#include "rows.cuh"

namespace q3r {

// Element offset of flat element e (row-major order) of a non-empty tensor.
__device__ __forceinline__ int64_t element_offset(const q3_tensor &t, int64_t e) {
    if (t.ndim == 0) return 0;
    if (t.ndim == 1) return e * t.strides[0];
    int64_t offset = 0;
    for (int d = t.ndim - 1; d >= 0; --d) {
        offset += (e % t.shape[d]) * t.strides[d];
        e /= t.shape[d];
    }
    return offset;
}

// Flat element e belongs to group e / per_group, whose bitmap is seen[group * words, +words).
template <bool DISTINCT>
static __global__ void __launch_bounds__(256) check_indices_kernel(q3_tensor t, int64_t count, int64_t limit,
                                                                   int64_t per_group, int64_t words,
                                                                   unsigned long long *seen, unsigned int *bad) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += step) {
        const int64_t v = q3::load_index(t, element_offset(t, e));
        if (v < 0 || v >= limit) {
            atomicOr(bad, 1u);
        } else if constexpr (DISTINCT) {
            const unsigned long long bit = 1ull << (v & 63);
            if (atomicOr(seen + (e / per_group) * words + (v >> 6), bit) & bit) atomicOr(bad, 1u);
        }
    }
}

// Largest bitmap the device check allocates; beyond it the caller's host check runs alone.
constexpr int64_t MAX_INDEX_BITMAP_BYTES = (int64_t)256 << 20;

// Checks the int32/int64 tensor `t` (any strides) on `stream`: every element in [0, limit) and,
// when groups > 0, the elements of each of `groups` equal runs of the row-major order distinct.
// *valid: true when all pass (an empty tensor passes without device work); false when something
// failed or the check did not run (bitmap too large). Returns Q3_OK, or Q3_OUT_OF_MEMORY /
// Q3_LAUNCH_FAILED naming op and tensor when the scratch, the launch or the read-back fails.
static inline int check_indices_on_device(const char *op, const char *name, const q3_tensor &t, int64_t limit,
                                          int64_t groups, cudaStream_t stream, bool *valid) {
    *valid = false;
    const int64_t count = q3_numel(&t);
    if (count == 0) {
        *valid = true;
        return Q3_OK;
    }
    const int64_t words = groups > 0 ? limit / 64 + 1 : 0;  // limit >= 0 (a tensor size)
    const int64_t max_words = MAX_INDEX_BITMAP_BYTES / 8;
    if (groups > 0 && (words > max_words || groups > max_words / words)) return Q3_OK;
    const int64_t bitmap_words = groups > 0 ? groups * words : 0;

    // One 8-byte word for the flag, then the bitmap.
    const size_t bytes = (size_t)(1 + bitmap_words) * sizeof(unsigned long long);
    void *scratch = NULL;
    cudaError_t error = scratch_alloc(&scratch, bytes, stream);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the scratch to check tensor '%s': %s", name,
                       cudaGetErrorString(error));
    }
    unsigned int *bad = static_cast<unsigned int *>(scratch);
    unsigned long long *seen = static_cast<unsigned long long *>(scratch) + 1;

    q3_tensor view = t;
    q3_tensor *const views[] = {&view};
    collapse(views, 1, false);  // row-major element order and offsets are unchanged
    int64_t blocks = ceil_div(count, 256);
    if (blocks > 4096) blocks = 4096;
    error = cudaMemsetAsync(scratch, 0, bytes, stream);
    if (error == cudaSuccess) {
        if (groups > 0) {
            check_indices_kernel<true><<<(unsigned)blocks, 256, 0, stream>>>(view, count, limit, count / groups,
                                                                              words, seen, bad);
        } else {
            check_indices_kernel<false><<<(unsigned)blocks, 256, 0, stream>>>(view, count, limit, 1, 0, seen, bad);
        }
        error = cudaGetLastError();
    }
    int status = Q3_OK;
    if (error != cudaSuccess) {
        cudaGetLastError();
        status = q3_fail(error == cudaErrorMemoryAllocation ? Q3_OUT_OF_MEMORY : Q3_LAUNCH_FAILED, op,
                         "checking tensor '%s' failed: CUDA error %s: %s", name, cudaGetErrorName(error),
                         cudaGetErrorString(error));
    } else {
        unsigned int flag = 1;
        error = cudaMemcpyAsync(&flag, bad, sizeof flag, cudaMemcpyDeviceToHost, stream);
        if (error == cudaSuccess) error = cudaStreamSynchronize(stream);
        if (error != cudaSuccess) {
            cudaGetLastError();
            status = q3_fail(Q3_LAUNCH_FAILED, op, "reading the check of tensor '%s' back failed: %s", name,
                             cudaGetErrorString(error));
        } else {
            *valid = flag == 0;
        }
    }
    if (cudaFreeAsync(scratch, stream) != cudaSuccess) cudaGetLastError();
    return status;
}

}  // namespace q3r
