/* KV cache writes. Contiguous: k_cache[b, positions[b, s]] = k[b, s] (and v), caches
 * [B, L, Hkv, D], k/v [B, S, Hkv, D]. Paged: slot = block * block_size + offset, caches
 * [num_blocks, block_size, Hkv, D], k/v [N, Hkv, D]. Indices are checked to be in range and
 * distinct before anything is written; nothing else of the caches is written. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "parallel.h"

static void copy_head_block(const q3_tensor *dst, int64_t dst_base, const q3_tensor *src,
                            int64_t src_base, int64_t heads, int64_t head_dim, int dst_h,
                            int src_h) {
    for (int64_t h = 0; h < heads; ++h) {
        const int64_t d0 = dst_base + h * dst->strides[dst_h];
        const int64_t s0 = src_base + h * src->strides[src_h];
        if (dst->dtype == src->dtype && dst->strides[dst_h + 1] == 1 && src->strides[src_h + 1] == 1) {
            const size_t element = dst->dtype == Q3_F32 ? sizeof(float) : sizeof(uint16_t);
            memcpy((char *)dst->data + (size_t)d0 * element, (const char *)src->data + (size_t)s0 * element,
                   (size_t)head_dim * element);
        } else if (dst->dtype == src->dtype && dst->dtype != Q3_F32) {
            /* 16-bit dtypes: copy the bits. */
            for (int64_t d = 0; d < head_dim; ++d) {
                ((uint16_t *)dst->data)[d0 + d * dst->strides[dst_h + 1]] =
                    ((const uint16_t *)src->data)[s0 + d * src->strides[src_h + 1]];
            }
        } else {
            for (int64_t d = 0; d < head_dim; ++d) {
                q3_store(dst, d0 + d * dst->strides[dst_h + 1],
                         q3_load(src, s0 + d * src->strides[src_h + 1]));
            }
        }
    }
}

int q3_kv_cache_write(q3_tensor k_cache, q3_tensor v_cache, q3_tensor k, q3_tensor v,
                      q3_tensor positions, void *stream) {
    Q3_ENTER("kv_cache_write", q3_check_kv_cache_write_call(op, &k_cache, &v_cache, &k, &v, &positions));
    const int64_t batch = k.shape[0], new_tokens = k.shape[1], length = k_cache.shape[1];
    int64_t *request = malloc(sizeof(int64_t) * (size_t)(new_tokens + 1));
    if (request == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate position scratch");
    for (int64_t b = 0; b < batch && status == Q3_OK; ++b) {
        for (int64_t s = 0; s < new_tokens; ++s) {
            request[s] = q3_load_index(&positions, b * positions.strides[0] + s * positions.strides[1]);
        }
        status = q3_check_index_set(op, "positions", request, new_tokens, length, b);
    }
    free(request);
    if (status != Q3_OK) return status;

    const int64_t heads = k.shape[2], head_dim = k.shape[3];
#pragma omp parallel for collapse(2) schedule(static) \
    if (q3_parallel(batch * new_tokens * heads * head_dim))
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t s = 0; s < new_tokens; ++s) {
            const int64_t p =
                q3_load_index(&positions, b * positions.strides[0] + s * positions.strides[1]);
            copy_head_block(&k_cache, b * k_cache.strides[0] + p * k_cache.strides[1], &k,
                            b * k.strides[0] + s * k.strides[1], heads, head_dim, 2, 2);
            copy_head_block(&v_cache, b * v_cache.strides[0] + p * v_cache.strides[1], &v,
                            b * v.strides[0] + s * v.strides[1], heads, head_dim, 2, 2);
        }
    }
    return Q3_OK;
}

int q3_kv_cache_write_paged(q3_tensor k_cache, q3_tensor v_cache, q3_tensor k, q3_tensor v,
                            q3_tensor slots, void *stream) {
    Q3_ENTER("kv_cache_write_paged", q3_check_kv_cache_write_paged_call(op, &k_cache, &v_cache, &k, &v, &slots));
    const int64_t count = k.shape[0];
    const int64_t num_blocks = k_cache.shape[0], block_size = k_cache.shape[1];
    const int64_t total = num_blocks * block_size;
    int64_t *values = malloc(sizeof(int64_t) * (size_t)(count + 1));
    if (values == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate slot scratch");
    for (int64_t n = 0; n < count; ++n) values[n] = q3_load_index(&slots, n * slots.strides[0]);
    status = q3_check_index_set(op, "slots", values, count, total, -1);
    free(values);
    if (status != Q3_OK) return status;
    const int64_t heads = k.shape[1], head_dim = k.shape[2];
#pragma omp parallel for schedule(static) if (q3_parallel(count * heads * head_dim))
    for (int64_t n = 0; n < count; ++n) {
        const int64_t slot = q3_load_index(&slots, n * slots.strides[0]);
        const int64_t block = slot / block_size, offset = slot % block_size;
        copy_head_block(&k_cache, block * k_cache.strides[0] + offset * k_cache.strides[1], &k,
                        n * k.strides[0], heads, head_dim, 2, 1);
        copy_head_block(&v_cache, block * v_cache.strides[0] + offset * v_cache.strides[1], &v,
                        n * v.strides[0], heads, head_dim, 2, 1);
    }
    return Q3_OK;
}
