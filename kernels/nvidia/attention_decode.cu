// Attention of S new tokens per request against a KV cache that already holds them, contiguous
// [B, L, Hkv, D] or paged [num_blocks, block_size, Hkv, D]. New token s of request b sits at
// position seq_lens[b] - S + s and attends to positions 0 .. that one; positions >= seq_lens[b]
// are never read, nor are block-table entries past a request's last used block.
//
// Flash-decoding (attention_tiles.cu): each CTA takes one (request, kv head, chunk of query rows,
// split of the keys) and serves every query head of the kv head, so each K/V row is loaded once
// for the whole GQA group; tensor cores and 16-byte cp.async copies when the cache rows are
// unit-stride and 16-byte aligned (f16/bf16, D in {64, 128}), CUDA cores otherwise; a combine
// kernel merges the splits by log-sum-exp. seq_lens (and the block table) are read back to the
// host and validated before anything is launched.
#include <limits.h>
#include <stdlib.h>

#include "attention_tiles.h"
#include "common.cuh"
#include "entry.h"

namespace {

// seq_lens (read back to the host) in [S, max_len]; *longest receives the largest.
int check_seq_lens(const char *op, const int64_t *lens, int64_t batch, int64_t new_tokens, int64_t max_len,
                   int64_t *longest) {
    *longest = 0;
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t len = lens[b];
        if (len < new_tokens || len > max_len) {
            return q3_fail(Q3_BAD_VALUE, op, "tensor 'seq_lens' holds %lld for request %lld, outside [%lld, %lld]",
                           (long long)len, (long long)b, (long long)new_tokens, (long long)max_len);
        }
        if (len > *longest) *longest = len;
    }
    return Q3_OK;
}

// The launch shared by both variants; table == NULL for the contiguous cache.
int run(const char *op, const q3_tensor &out, const q3_tensor &q, const q3_tensor &k_cache,
        const q3_tensor &v_cache, const q3_tensor *table, const q3_tensor &seq_lens, int64_t longest, double scale,
        cudaStream_t stream) {
    const int64_t batch = q.shape[0], new_tokens = q.shape[1], q_heads = q.shape[2];
    const int64_t head_dim = q.shape[3], kv_heads = k_cache.shape[2];
    if (batch > INT_MAX || q_heads > INT_MAX || head_dim > INT_MAX / 4) {
        return q3_fail(Q3_UNSUPPORTED, op, "too many requests or heads, or too wide a head, for the CUDA "
                                           "attention kernel");
    }
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
    const int size = attn::elem_size(q.dtype);
    const bool vec = attn::vector_layout(k_cache, size) && attn::vector_layout(v_cache, size);
    const int status = attn::launch_split_dtype(op, q.dtype, p, vec, longest, stream);
    if (status != Q3_OK) return status;
    return q3_cuda_launch_status(op);
}

}  // namespace

int q3_attention_decode(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache, q3_tensor seq_lens,
                        double scale, void *stream) {
    Q3_ENTER("attention_decode", q3_check_attention_decode_call(op, &out, &q, &k_cache, &v_cache, &seq_lens, scale));
    cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
    int64_t *lens = q3_cuda_indices_to_host(op, "seq_lens", &seq_lens, cuda_stream, &status);
    if (lens == NULL) return status;
    int64_t longest;
    status = check_seq_lens(op, lens, q.shape[0], q.shape[1], k_cache.shape[1], &longest);
    free(lens);
    if (status != Q3_OK) return status;
    if (q3_numel(&out) == 0) return Q3_OK;
    return run(op, out, q, k_cache, v_cache, NULL, seq_lens, longest, scale, cuda_stream);
}

int q3_attention_decode_paged(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache,
                              q3_tensor block_table, q3_tensor seq_lens, double scale, void *stream) {
    Q3_ENTER("attention_decode_paged",
             q3_check_attention_decode_paged_call(op, &out, &q, &k_cache, &v_cache, &block_table, &seq_lens, scale));
    const int64_t num_blocks = k_cache.shape[0], block_size = k_cache.shape[1];
    const int64_t max_blocks = block_table.shape[1];
    cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
    int64_t *lens = q3_cuda_indices_to_host(op, "seq_lens", &seq_lens, cuda_stream, &status);
    if (lens == NULL) return status;
    int64_t longest;
    if ((status = check_seq_lens(op, lens, q.shape[0], q.shape[1], max_blocks * block_size, &longest)) != Q3_OK) {
        free(lens);
        return status;
    }
    int64_t *table = q3_cuda_indices_to_host(op, "block_table", &block_table, cuda_stream, &status);
    if (table == NULL) {
        free(lens);
        return status;
    }
    for (int64_t b = 0; b < q.shape[0] && status == Q3_OK; ++b) {
        const int64_t used = (lens[b] + block_size - 1) / block_size;
        for (int64_t i = 0; i < used; ++i) {
            const int64_t block = table[b * max_blocks + i];
            if (block < 0 || block >= num_blocks) {
                status = q3_fail(Q3_BAD_VALUE, op,
                                 "tensor 'block_table' holds %lld at [%lld, %lld], outside [0, %lld)",
                                 (long long)block, (long long)b, (long long)i, (long long)num_blocks);
                break;
            }
        }
    }
    free(table);
    free(lens);
    if (status != Q3_OK) return status;
    if (q3_numel(&out) == 0) return Q3_OK;
    return run(op, out, q, k_cache, v_cache, &block_table, seq_lens, longest, scale, cuda_stream);
}
