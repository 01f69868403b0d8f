// Index tensors (token ids, cache positions, slots) checked on the device without a host
// synchronisation. A call launches the check (every index in [0, limit), and for grouped indices
// each value at most once per group), then its writing kernel, which opens with write_blocked():
// when a check has failed, the kernel writes nothing, and the kernel of the call whose check failed
// first names the offending element instead. The host reads the outcome only when asked,
// q3_take_deferred_error (deferred_check.cu), which waits for the stream and turns it into the
// message the host checks give (operator, tensor, index, allowed range).
//
// The element named is the first, in row-major order, that is out of range or whose value occurs
// again in its group. A failure is sticky: until it is taken, every checked call writes nothing.
#pragma once

#include <stdint.h>

#include "rows.cuh"

namespace q3r {

// One per device, in device memory.
struct DeferredRecord {
    unsigned int flag;         // nonzero once a check failed; cleared when taken
    unsigned int ticket;       // the call whose check failed first (0: none)
    unsigned int blocks_done;  // naming: blocks of the failing call's kernel that are done
    unsigned int named;        // position, value and kind are final
    unsigned long long position;  // the named element's flat index (~0: none yet)
    long long value;
    int kind;  // DEFERRED_OUT_OF_RANGE or DEFERRED_REPEATED
};

constexpr int DEFERRED_OUT_OF_RANGE = 1, DEFERRED_REPEATED = 2;

// How the message names an index: "at flat position i ... outside the vocabulary" (ids), "at [g, i]"
// and "for request g" (grouped positions), "at [i]" (one group of slots).
enum DeferredStyle { DEFERRED_IDS, DEFERRED_GROUPED, DEFERRED_FLAT };

// What a writing kernel needs to know about its call's check (passed by value).
struct IndexGuard {
    DeferredRecord *record;
    unsigned int ticket;
    q3_tensor index;   // the checked tensor, collapsed (row-major element order unchanged)
    int64_t count;     // its elements
    int64_t limit;
    int64_t per_group;  // elements per group (count when ungrouped)
    int64_t words;      // 64-bit words of one group's bitmap (0: ungrouped)
    const unsigned long long *repeated;  // per group, the values seen more than once (or NULL)
    void *scratch;  // the bitmaps' allocation (host bookkeeping)
};

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

__device__ __forceinline__ bool index_is_bad(const IndexGuard &g, int64_t e, int64_t *value) {
    const int64_t v = q3::load_index(g.index, element_offset(g.index, e));
    *value = v;
    if (v < 0 || v >= g.limit) return true;
    if (g.repeated == nullptr) return false;
    const unsigned long long word = g.repeated[(e / g.per_group) * g.words + (v >> 6)];
    return (word >> (v & 63)) & 1ull;
}

// Every thread of the grid: the smallest bad flat element into the record; the last block to finish
// reads it back and stores its value and kind.
static __device__ __noinline__ void name_first_bad(const IndexGuard &g) {
    const unsigned long long none = ~0ull;
    unsigned long long first = none;
    const int64_t threads = (int64_t)blockDim.x * blockDim.y * blockDim.z;
    const int64_t thread = threadIdx.x + (int64_t)blockDim.x * (threadIdx.y + (int64_t)blockDim.y * threadIdx.z);
    const int64_t blocks = (int64_t)gridDim.x * gridDim.y * gridDim.z;
    const int64_t block = blockIdx.x + (int64_t)gridDim.x * (blockIdx.y + (int64_t)gridDim.y * blockIdx.z);
    for (int64_t e = block * threads + thread; e < g.count; e += blocks * threads) {
        int64_t value;
        if (index_is_bad(g, e, &value)) {
            first = (unsigned long long)e;
            break;  // later elements of this thread come after e
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, first, o);
        first = other < first ? other : first;
    }
    __shared__ unsigned long long warp_first[32];
    __shared__ bool last;
    const int lane = (int)(thread & 31), warp = (int)(thread >> 5);
    if (lane == 0) warp_first[warp] = first;
    __syncthreads();
    if (thread == 0) {
        for (int w = 1; w < (int)((threads + 31) / 32); ++w) first = warp_first[w] < first ? warp_first[w] : first;
        if (first != none) atomicMin(&g.record->position, first);
        __threadfence();
        last = atomicAdd(&g.record->blocks_done, 1u) == (unsigned int)(blocks - 1);
    }
    __syncthreads();
    if (thread == 0 && last) {
        const unsigned long long position = atomicAdd(&g.record->position, 0ull);
        if (position != none) {
            int64_t value;
            index_is_bad(g, (int64_t)position, &value);
            g.record->value = value;
            g.record->kind = (value < 0 || value >= g.limit) ? DEFERRED_OUT_OF_RANGE : DEFERRED_REPEATED;
        }
        g.record->blocks_done = 0;
        __threadfence();
        g.record->named = 1;
    }
}

// Opens every writing kernel of a checked call, called by all its threads: true when the kernel must
// write nothing (a check failed); the kernel of the call that failed first names the element.
__device__ __forceinline__ bool write_blocked(const IndexGuard &g) {
    if (*static_cast<volatile unsigned int *>(&g.record->flag) == 0) return false;
    if (*static_cast<volatile unsigned int *>(&g.record->ticket) == g.ticket) name_first_bad(g);
    return true;
}

// Host side (deferred_check.cu).

// Largest bitmap scratch a grouped check allocates; beyond it the call checks on the host at once.
constexpr int64_t MAX_INDEX_BITMAP_BYTES = (int64_t)256 << 20;

// Launches the check of int32/int64 tensor `t` (any strides) on `stream`: every element in
// [0, limit) and, when groups > 0, the elements of each of `groups` equal runs of the row-major order
// distinct. Fills *guard for the writing kernel; a grouped check too large for its bitmap is done on
// the host instead (*on_host set: the caller checks there, then launches with the guard as is).
// Q3_OK, or Q3_OUT_OF_MEMORY / Q3_LAUNCH_FAILED naming op and tensor. release_guard after the
// writing kernel's launch.
int check_indices_deferred(const char *op, const char *name, DeferredStyle style, const q3_tensor &t,
                           int64_t limit, int64_t groups, cudaStream_t stream, IndexGuard *guard, bool *on_host);

// Frees the guard's scratch (stream-ordered, after the writing kernel).
void release_guard(IndexGuard *guard, cudaStream_t stream);

}  // namespace q3r
