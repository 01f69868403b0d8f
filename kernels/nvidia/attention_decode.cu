// Attention of S new tokens per request against a KV cache that already holds them, contiguous
// [B, L, Hkv, D] or paged [num_blocks, block_size, Hkv, D]. New token s of request b sits at
// position seq_lens[b] - S + s and attends to positions 0 .. that one; positions >= seq_lens[b]
// are never read, nor are block-table entries past a request's last used block.
//
// Flash-decoding (attention_tiles.cu): each CTA takes one (request, kv head, chunk of query rows,
// split of the keys) and serves every query head of the kv head, so each K/V row is loaded once
// for the whole GQA group; tensor cores and 16-byte cp.async copies when the cache rows are
// unit-stride and 16-byte aligned (f16/bf16, D in {64, 128}), CUDA cores otherwise; a combine
// kernel merges the splits by log-sum-exp. seq_lens (and the used entries of the block table) are
// checked on the device without a host synchronisation (deferred_check.cuh): a bad one makes the
// call write nothing and is reported by q3_take_deferred_error. The splits are sized for the
// cache's capacity, since the lengths stay on the device: splits past a request's length do nothing.
#include <limits.h>
#include <stdlib.h>

#include "attention_tiles.h"
#include "common.cuh"
#include "entry.h"

namespace {

// seq_lens read back to the host, in [S, max_len]: for calls with nothing to compute, checked at once.
int check_seq_lens_on_host(const char *op, const q3_tensor &seq_lens, int64_t new_tokens, int64_t max_len,
                           cudaStream_t stream) {
    int status;
    int64_t *lens = q3_cuda_indices_to_host(op, "seq_lens", &seq_lens, stream, &status);
    if (lens == NULL) return status;
    for (int64_t b = 0; b < q3_numel(&seq_lens) && status == Q3_OK; ++b) {
        if (lens[b] < new_tokens || lens[b] > max_len) {
            status = q3_fail(Q3_BAD_VALUE, op, "tensor 'seq_lens' holds %lld for request %lld, outside [%lld, %lld]",
                             (long long)lens[b], (long long)b, (long long)new_tokens, (long long)max_len);
        }
    }
    free(lens);
    return status;
}

// The used entries of the block table (those below ceil(seq_lens[b] / block_size)) read back and
// checked on the host, for calls with nothing to compute (the lengths checked already).
int check_table_on_host(const char *op, const q3_tensor &block_table, const q3_tensor &seq_lens, int64_t num_blocks,
                        int64_t block_size, cudaStream_t stream) {
    if (q3_numel(&block_table) == 0) return Q3_OK;
    int status;
    int64_t *lens = q3_cuda_indices_to_host(op, "seq_lens", &seq_lens, stream, &status);
    if (lens == NULL) return status;
    int64_t *table = q3_cuda_indices_to_host(op, "block_table", &block_table, stream, &status);
    if (table == NULL) {
        free(lens);
        return status;
    }
    const int64_t max_blocks = block_table.shape[1];
    for (int64_t b = 0; b < block_table.shape[0] && status == Q3_OK; ++b) {
        const int64_t used = (lens[b] + block_size - 1) / block_size;
        for (int64_t i = 0; i < used && i < max_blocks && status == Q3_OK; ++i) {
            const int64_t block = table[b * max_blocks + i];
            if (block < 0 || block >= num_blocks) {
                status = q3_fail(Q3_BAD_VALUE, op, "tensor 'block_table' holds %lld at [%lld, %lld], outside [0, %lld)",
                                 (long long)block, (long long)b, (long long)i, (long long)num_blocks);
            }
        }
    }
    free(table);
    free(lens);
    return status;
}

// The sizes the kernel takes, tested before any check is launched.
int check_sizes(const char *op, const q3_tensor &q) {
    if (q.shape[0] > INT_MAX || q.shape[2] > INT_MAX || q.shape[3] > INT_MAX / 4) {
        return q3_fail(Q3_UNSUPPORTED, op, "too many requests or heads, or too wide a head, for the CUDA "
                                           "attention kernel");
    }
    return Q3_OK;
}

// Ends a call whose checks were launched: the guards released, or withdrawn when the call failed.
int finish(int status, q3r::IndexGuard *guards, int count, cudaStream_t stream) {
    for (int i = 0; i < count; ++i) {
        if (status != Q3_OK) {
            q3r::withdraw_check(&guards[i], stream);
        } else {
            q3r::release_guard(&guards[i], stream);
        }
    }
    return status;
}

// The launch shared by both variants; table == NULL for the contiguous cache.
int run(const char *op, const q3_tensor &out, const q3_tensor &q, const q3_tensor &k_cache,
        const q3_tensor &v_cache, const q3_tensor *table, const q3_tensor &seq_lens, int64_t capacity, double scale,
        const q3r::IndexGuard *guards, int guard_count, cudaStream_t stream) {
    const int64_t batch = q.shape[0], new_tokens = q.shape[1], q_heads = q.shape[2];
    const int64_t head_dim = q.shape[3], kv_heads = k_cache.shape[2];
    attn::SplitParams p = {};
    p.q = q.data; p.q_b = q.strides[0]; p.q_s = q.strides[1]; p.q_h = q.strides[2]; p.q_d = q.strides[3];
    p.k = k_cache.data; p.k_b = k_cache.strides[0]; p.k_p = k_cache.strides[1];
    p.k_h = k_cache.strides[2]; p.k_d = k_cache.strides[3];
    p.v = v_cache.data; p.v_b = v_cache.strides[0]; p.v_p = v_cache.strides[1];
    p.v_h = v_cache.strides[2]; p.v_d = v_cache.strides[3];
    p.out = out.data; p.o_b = out.strides[0]; p.o_s = out.strides[1]; p.o_h = out.strides[2];
    p.o_d = out.strides[3];
    if (table != nullptr) {
        p.table = table->data;
        p.table_i64 = table->dtype == Q3_I64;
        p.t_b = table->strides[0];
        p.t_i = table->strides[1];
        p.block_size = k_cache.shape[1];
    }
    p.lens = seq_lens.data;
    p.lens_i64 = seq_lens.dtype == Q3_I64;
    p.lens_stride = seq_lens.strides[0];
    p.new_tokens = new_tokens;
    p.batch = static_cast<int>(batch);
    p.kv_heads = static_cast<int>(kv_heads);
    p.group = static_cast<int>(q_heads / kv_heads);
    p.head_dim = static_cast<int>(head_dim);
    p.scale_log2 = static_cast<float>(scale) * attn::kLog2e;
    p.scale = static_cast<float>(scale);
    for (int i = 0; i < guard_count; ++i) p.guards[i] = guards[i];
    p.guard_count = guard_count;
    const int size = attn::elem_size(q.dtype);
    const bool vec = attn::vector_layout(k_cache, size) && attn::vector_layout(v_cache, size);
    const int status = attn::launch_split_dtype(op, q.dtype, p, vec, capacity, stream);
    if (status != Q3_OK) return status;
    return q3_cuda_launch_status(op);
}

}  // namespace

int q3_attention_decode(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache, q3_tensor seq_lens,
                        double scale, void *stream) {
    Q3_ENTER("attention_decode", q3_check_attention_decode_call(op, &out, &q, &k_cache, &v_cache, &seq_lens, scale));
    cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
    const int64_t new_tokens = q.shape[1], capacity = k_cache.shape[1];
    if (q3_numel(&out) == 0) return check_seq_lens_on_host(op, seq_lens, new_tokens, capacity, cuda_stream);
    if ((status = check_sizes(op, q)) != Q3_OK) return status;
    q3r::IndexGuard guard;
    bool on_host;
    const q3r::CheckSpec spec = {"seq_lens", q3r::DEFERRED_LENGTHS, new_tokens, capacity + 1, 1, false, nullptr, 0};
    if ((status = q3r::check_deferred(op, spec, seq_lens, cuda_stream, &guard, &on_host)) != Q3_OK) return status;
    status = run(op, out, q, k_cache, v_cache, NULL, seq_lens, capacity, scale, &guard, 1, cuda_stream);
    return finish(status, &guard, 1, cuda_stream);
}

int q3_attention_decode_paged(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache,
                              q3_tensor block_table, q3_tensor seq_lens, double scale, void *stream) {
    Q3_ENTER("attention_decode_paged",
             q3_check_attention_decode_paged_call(op, &out, &q, &k_cache, &v_cache, &block_table, &seq_lens, scale));
    const int64_t num_blocks = k_cache.shape[0], block_size = k_cache.shape[1];
    const int64_t capacity = block_table.shape[1] * block_size, new_tokens = q.shape[1];
    cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
    if (q3_numel(&out) == 0) {
        if ((status = check_seq_lens_on_host(op, seq_lens, new_tokens, capacity, cuda_stream)) != Q3_OK) return status;
        return check_table_on_host(op, block_table, seq_lens, num_blocks, block_size, cuda_stream);
    }
    if ((status = check_sizes(op, q)) != Q3_OK) return status;
    q3r::IndexGuard guards[2];
    bool on_host;
    const q3r::CheckSpec lengths = {"seq_lens", q3r::DEFERRED_LENGTHS, new_tokens, capacity + 1, 1, false, nullptr, 0};
    const q3r::CheckSpec table = {"block_table", q3r::DEFERRED_GROUPED, 0, num_blocks, q.shape[0], false, &seq_lens,
                                  block_size};
    if ((status = q3r::check_deferred(op, lengths, seq_lens, cuda_stream, &guards[0], &on_host)) != Q3_OK) {
        return status;
    }
    if ((status = q3r::check_deferred(op, table, block_table, cuda_stream, &guards[1], &on_host)) != Q3_OK) {
        return finish(status, guards, 1, cuda_stream);
    }
    status = run(op, out, q, k_cache, v_cache, &block_table, seq_lens, capacity, scale, guards, 2, cuda_stream);
    return finish(status, guards, 2, cuda_stream);
}
