// KV cache writes. Contiguous: k_cache[b, positions[b, s]] = k[b, s] (and v), caches
// [B, L, Hkv, D], k/v [B, S, Hkv, D]. Paged: slot = block * block_size + offset, caches
// [num_blocks, block_size, Hkv, D], k/v [N, Hkv, D]. The indices are checked on the device before
// anything is written, without a host synchronisation (deferred_check.cuh: in range, positions
// distinct within each request, slots distinct over the call; a bad index makes the call write
// nothing and is reported by q3_take_deferred_error); then one thread per 16-byte pack (one element
// when a layout does not allow packs) of the written head rows copies the bits of k and of v.
// Nothing else of the caches is written.
#include <stdlib.h>

#include "deferred_check.cuh"
#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

// Copies one pack of the head row of k (and of v) at `src_*` to the cache head row at `dst_*`.
template <typename T, int N>
__device__ __forceinline__ void copy_item(const q3_tensor &kc, const q3_tensor &vc, const q3_tensor &k,
                                          const q3_tensor &v, int64_t kc_row, int64_t vc_row, int64_t k_row,
                                          int64_t v_row, int64_t item) {
    const Pack<T, N> a = load_item<T, N>(static_cast<const T *>(k.data) + k_row, k.strides[k.ndim - 1], item);
    const Pack<T, N> b = load_item<T, N>(static_cast<const T *>(v.data) + v_row, v.strides[v.ndim - 1], item);
    store_item<T, N>(static_cast<T *>(kc.data) + kc_row, kc.strides[3], item, a);
    store_item<T, N>(static_cast<T *>(vc.data) + vc_row, vc.strides[3], item, b);
}

// Thread i: pack `item` of head h of token s of request b (i = ((b * S + s) * H + h) * items + item).
template <typename T, int N, typename I>
__global__ void __launch_bounds__(256) kv_write_kernel(q3_tensor kc, q3_tensor vc, q3_tensor k, q3_tensor v,
                                                       q3_tensor positions, I total, I items, I heads, I tokens,
                                                       IndexGuard guard) {
    if (write_blocked(guard)) return;
    const I step = (I)gridDim.x * (I)blockDim.x;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += step) {
        I r = i / items;
        const I item = i - r * items;
        const I h = r % heads;
        r /= heads;
        const I s = r % tokens, b = r / tokens;
        const int64_t p = q3::load_index(positions, (int64_t)b * positions.strides[0] + (int64_t)s * positions.strides[1]);
        copy_item<T, N>(kc, vc, k, v, (int64_t)b * kc.strides[0] + p * kc.strides[1] + (int64_t)h * kc.strides[2],
                        (int64_t)b * vc.strides[0] + p * vc.strides[1] + (int64_t)h * vc.strides[2],
                        (int64_t)b * k.strides[0] + (int64_t)s * k.strides[1] + (int64_t)h * k.strides[2],
                        (int64_t)b * v.strides[0] + (int64_t)s * v.strides[1] + (int64_t)h * v.strides[2],
                        (int64_t)item);
    }
}

// Thread i: pack `item` of head h of token n (i = (n * H + h) * items + item).
template <typename T, int N, typename I>
__global__ void __launch_bounds__(256) kv_write_paged_kernel(q3_tensor kc, q3_tensor vc, q3_tensor k, q3_tensor v,
                                                             q3_tensor slots, I total, I items, I heads,
                                                             IndexGuard guard) {
    if (write_blocked(guard)) return;
    const int64_t block_size = kc.shape[1];
    const I step = (I)gridDim.x * (I)blockDim.x;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += step) {
        const I r = i / items;
        const I item = i - r * items;
        const I h = r % heads, n = r / heads;
        const int64_t slot = q3::load_index(slots, (int64_t)n * slots.strides[0]);
        const int64_t block = slot / block_size, offset = slot - block * block_size;
        copy_item<T, N>(kc, vc, k, v, block * kc.strides[0] + offset * kc.strides[1] + (int64_t)h * kc.strides[2],
                        block * vc.strides[0] + offset * vc.strides[1] + (int64_t)h * vc.strides[2],
                        (int64_t)n * k.strides[0] + (int64_t)h * k.strides[1],
                        (int64_t)n * v.strides[0] + (int64_t)h * v.strides[1], (int64_t)item);
    }
}

bool packs_allowed(const q3_tensor &kc, const q3_tensor &vc, const q3_tensor &k, const q3_tensor &v, int vec) {
    return kc.shape[3] % vec == 0 && rows_vectorizable(kc, vec) && rows_vectorizable(vc, vec) &&
           rows_vectorizable(k, vec) && rows_vectorizable(v, vec);
}

int64_t grid_for(int64_t total) {
    const int64_t blocks = ceil_div(total, 256);
    return blocks > ((int64_t)1 << 22) ? ((int64_t)1 << 22) : blocks;  // grid-stride step <= 2^30
}

// T: an unsigned integer of the element's size (the copy moves bits).
template <typename T, int N, typename I>
void launch_contiguous(const q3_tensor &kc, const q3_tensor &vc, const q3_tensor &k, const q3_tensor &v,
                       const q3_tensor &positions, const IndexGuard &guard, cudaStream_t stream) {
    const int64_t items = k.shape[3] / N, total = k.shape[0] * k.shape[1] * k.shape[2] * items;
    kv_write_kernel<T, N, I><<<(unsigned)grid_for(total), 256, 0, stream>>>(kc, vc, k, v, positions, (I)total, (I)items,
                                                                          (I)k.shape[2], (I)k.shape[1], guard);
}

template <typename T, int N, typename I>
void launch_paged(const q3_tensor &kc, const q3_tensor &vc, const q3_tensor &k, const q3_tensor &v,
                  const q3_tensor &slots, const IndexGuard &guard, cudaStream_t stream) {
    const int64_t items = k.shape[2] / N, total = k.shape[0] * k.shape[1] * items;
    kv_write_paged_kernel<T, N, I><<<(unsigned)grid_for(total), 256, 0, stream>>>(kc, vc, k, v, slots, (I)total,
                                                                                (I)items, (I)k.shape[1], guard);
}

template <typename T>
void dispatch(bool paged, const q3_tensor &kc, const q3_tensor &vc, const q3_tensor &k, const q3_tensor &v,
              const q3_tensor &index, int64_t total_elements, const IndexGuard &guard, cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    const bool vec = packs_allowed(kc, vc, k, v, V);
    const bool small = total_elements <= ((int64_t)1 << 31);
#define Q3_KV_LAUNCH(N, I) \
    (paged ? launch_paged<T, N, I>(kc, vc, k, v, index, guard, stream) \
           : launch_contiguous<T, N, I>(kc, vc, k, v, index, guard, stream))
    if (vec && small) Q3_KV_LAUNCH(V, uint32_t);
    else if (vec) Q3_KV_LAUNCH(V, uint64_t);
    else if (small) Q3_KV_LAUNCH(1, uint32_t);
    else Q3_KV_LAUNCH(1, uint64_t);
#undef Q3_KV_LAUNCH
}

// Checks the indices (on the device; on the host at once when there is nothing to write or the
// bitmaps would be too large), then launches the copy behind the check.
int run(const char *op, bool paged, const q3_tensor &kc, const q3_tensor &vc, const q3_tensor &k, const q3_tensor &v,
        const q3_tensor &index, int64_t limit, int64_t groups, cudaStream_t stream) {
    const char *name = paged ? "slots" : "positions";
    const int64_t total = q3_numel(&k);
    if (q3_numel(&index) == 0) return Q3_OK;  // no token: k holds nothing either
    IndexGuard guard;
    bool on_host = total == 0;
    int status = Q3_OK;
    if (!on_host) {
        const CheckSpec spec = {name, paged ? DEFERRED_FLAT : DEFERRED_GROUPED, 0, limit, groups, true, nullptr, 0};
        status = check_deferred(op, spec, index, stream, &guard, &on_host);
        if (status != Q3_OK) return status;
    }
    if (on_host) {
        int64_t *values = q3_cuda_indices_to_host(op, name, &index, stream, &status);
        if (values == NULL) return status;
        const int64_t per_group = q3_numel(&index) / groups;
        for (int64_t g = 0; g < groups && status == Q3_OK; ++g) {
            status = q3_check_index_set(op, name, values + g * per_group, per_group, limit, paged ? -1 : g);
        }
        free(values);
        if (status != Q3_OK || total == 0) return status;
    }
    if (kc.dtype == Q3_F32) {
        dispatch<uint32_t>(paged, kc, vc, k, v, index, total, guard, stream);
    } else {
        dispatch<uint16_t>(paged, kc, vc, k, v, index, total, guard, stream);
    }
    status = q3_cuda_launch_status(op);
    if (status != Q3_OK) {
        withdraw_check(&guard, stream);
    } else {
        release_guard(&guard, stream);
    }
    return status;
}

}  // namespace

int q3_kv_cache_write(q3_tensor k_cache, q3_tensor v_cache, q3_tensor k, q3_tensor v, q3_tensor positions,
                      void *stream) {
    Q3_ENTER("kv_cache_write", q3_check_kv_cache_write_call(op, &k_cache, &v_cache, &k, &v, &positions));
    return run(op, false, k_cache, v_cache, k, v, positions, k_cache.shape[1], k.shape[0], (cudaStream_t)stream);
}

int q3_kv_cache_write_paged(q3_tensor k_cache, q3_tensor v_cache, q3_tensor k, q3_tensor v, q3_tensor slots,
                            void *stream) {
    Q3_ENTER("kv_cache_write_paged", q3_check_kv_cache_write_paged_call(op, &k_cache, &v_cache, &k, &v, &slots));
    return run(op, true, k_cache, v_cache, k, v, slots, k_cache.shape[0] * k_cache.shape[1], 1, (cudaStream_t)stream);
}
