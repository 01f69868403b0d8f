// Index and value tensors (token ids, cache positions, slots, sequence lengths, block tables, the
// uniforms of sampling) checked on the device without a host synchronisation. A call launches the
// check (every value in its range, and for grouped indices each value at most once per group), then
// its kernels, which open with write_blocked(): when a check has failed, they write nothing, and the
// kernels of the call whose check failed first name the offending element instead. The host reads
// the outcome only when asked, q3_take_deferred_error (deferred_check.cu), which waits for the
// stream and turns it into the message the host checks give (operator, tensor, index, range).
//
// The element named is the first, in row-major order, that is out of range or whose value occurs
// again in its group (every occurrence of a repeated value counts: for input with several bad
// elements the host checks, which name the first later occurrence, may name another one; the wording
// is theirs). A failure is sticky: until it is taken, every checked call writes nothing. The record
// is one per device: the harness runs one stream, and a take waits for the stream it is given.
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

// How the message names a bad element: "at flat position i ... outside the vocabulary" (ids), "at
// [g, i]" and "for request g" (grouped positions, block tables), "at [i]" (one group of slots),
// "for request i, outside [low, limit - 1]" (sequence lengths), "for row i, outside [0, 1)"
// (float32 uniforms: the value travels as the bits of a double).
enum DeferredStyle { DEFERRED_IDS, DEFERRED_GROUPED, DEFERRED_FLAT, DEFERRED_LENGTHS, DEFERRED_UNIFORMS };

// What a call's kernels need to know about its check (passed by value).
struct IndexGuard {
    DeferredRecord *record;
    unsigned int ticket;
    q3_tensor index;   // the checked tensor, collapsed (row-major element order unchanged)
    int64_t count;     // its elements
    int64_t low, limit;  // integers in [low, limit); float32 tensors in [0, 1)
    int64_t per_group;  // elements per group (count when ungrouped)
    int64_t words;      // 64-bit words of one group's bitmap (0: ungrouped)
    const unsigned long long *repeated;  // per group, the values seen more than once (or NULL)
    q3_tensor lengths;  // block tables: entry [b, i] counts only when i < ceil(lengths[b] / block_size)
    int64_t block_size;  // 0: every element counts
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

// Whether element e counts at all, and whether it lies outside its range; *value: the element (a
// float's double bits).
__device__ __forceinline__ bool out_of_range(const IndexGuard &g, int64_t e, int64_t *value, bool *counts) {
    *counts = true;
    const int64_t offset = element_offset(g.index, e);
    if (g.index.dtype == Q3_F32) {
        const float r = static_cast<const float *>(g.index.data)[offset];
        *value = __double_as_longlong((double)r);
        return !(r >= 0.0f && r < 1.0f);
    }
    const int64_t v = q3::load_index(g.index, offset);
    *value = v;
    if (g.block_size > 0) {
        const int64_t length = q3::load_index(g.lengths, (e / g.per_group) * g.lengths.strides[0]);
        *counts = e % g.per_group < (length + g.block_size - 1) / g.block_size;
        if (!*counts) return false;
    }
    return v < g.low || v >= g.limit;
}

__device__ __forceinline__ bool index_is_bad(const IndexGuard &g, int64_t e, int64_t *value) {
    bool counts;
    if (out_of_range(g, e, value, &counts)) return true;
    if (!counts || g.repeated == nullptr) return false;
    const int64_t v = *value;
    const unsigned long long word = g.repeated[(e / g.per_group) * g.words + (v >> 6)];
    return (word >> (v & 63)) & 1ull;
}

// Every thread of the grid: the smallest bad flat element into the record; the last block to finish
// reads it back and stores its value and kind. Inlined: a call would copy the guard, a kernel
// parameter, to every thread's stack before the kernel could even test the flag.
__device__ __forceinline__ void name_first_bad(const IndexGuard &g) {
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
            bool counts;
            const bool outside = out_of_range(g, (int64_t)position, &value, &counts);
            g.record->value = value;
            g.record->kind = outside ? DEFERRED_OUT_OF_RANGE : DEFERRED_REPEATED;
        }
        g.record->blocks_done = 0;
        __threadfence();
        g.record->named = 1;
    }
}

// Opens every kernel of a checked call, called by all its threads: true when the kernel must write
// nothing (a check failed); the kernels of the call that failed first name the element.
__device__ __forceinline__ bool write_blocked(const IndexGuard &g) {
    if (*static_cast<volatile unsigned int *>(&g.record->flag) == 0) return false;
    if (*static_cast<volatile unsigned int *>(&g.record->ticket) == g.ticket) name_first_bad(g);
    return true;
}

// Host side (deferred_check.cu).

// Largest bitmap scratch a grouped check allocates; beyond it the call checks on the host at once.
constexpr int64_t MAX_INDEX_BITMAP_BYTES = (int64_t)256 << 20;

// What a check tests: name and message style of the tensor, the range of its values, its `groups`
// (equal runs of its row-major order: requests, rows of a block table) and whether the values of a
// group must be distinct, and for a block table the lengths that say which entries count.
struct CheckSpec {
    const char *name;
    DeferredStyle style;
    int64_t low, limit;
    int64_t groups;  // >= 1
    bool distinct;
    const q3_tensor *lengths;  // or NULL
    int64_t block_size;
};

// Launches the check of int32/int64 (or float32 uniforms) tensor `t`, any strides, on `stream` and
// fills *guard for the call's kernels; a grouped check too large for its bitmaps is left to the host
// (*on_host set: the caller checks there, then launches with the guard as is). Q3_OK, or
// Q3_OUT_OF_MEMORY / Q3_LAUNCH_FAILED naming op and tensor. release_guard after the launches.
int check_deferred(const char *op, const CheckSpec &spec, const q3_tensor &t, cudaStream_t stream, IndexGuard *guard,
                   bool *on_host);

// Frees the guard's scratch (stream-ordered, after the writing kernel).
void release_guard(IndexGuard *guard, cudaStream_t stream);

// For a call that fails for another reason after its check was launched (none of its kernels will
// run to name an element): clears the record if this call's check was the one that failed, so no
// later call is blocked by it; a failure of an earlier call stays. Then releases the guard.
void withdraw_check(IndexGuard *guard, cudaStream_t stream);

}  // namespace q3r
