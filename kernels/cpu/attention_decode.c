/* Attention of S new tokens per request against a KV cache that already holds them, contiguous
 * [B, L, Hkv, D] or paged [num_blocks, block_size, Hkv, D]. New token s of request b sits at
 * position seq_lens[b] - S + s and attends to positions 0 .. that one; positions >= seq_lens[b]
 * are never read. */
#include "attention_row.h"
#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

/* seq_lens in [S, max_len]; *longest receives the largest. */
static int check_seq_lens(const char *op, const q3_tensor *seq_lens, int64_t new_tokens,
                          int64_t max_len, int64_t *longest) {
    *longest = 0;
    for (int64_t b = 0; b < seq_lens->shape[0]; ++b) {
        const int64_t len = q3_load_index(seq_lens, b * seq_lens->strides[0]);
        if (len < new_tokens || len > max_len) {
            return q3_fail(Q3_BAD_VALUE, op,
                           "tensor 'seq_lens' holds %lld for request %lld, outside [%lld, %lld]",
                           (long long)len, (long long)b, (long long)new_tokens,
                           (long long)max_len);
        }
        if (len > *longest) *longest = len;
    }
    return Q3_OK;
}

/* The compute shared by both variants; table == NULL for the contiguous cache. The S new tokens of a
 * request that a kv head's group of query heads asks for share each key and value row read. */
static int run(const char *op, const q3_tensor *out, const q3_tensor *q, const q3_tensor *k_cache,
               const q3_tensor *v_cache, const q3_tensor *table, int64_t block_size,
               const q3_tensor *seq_lens, int64_t longest, double scale) {
    const int64_t batch = q->shape[0], new_tokens = q->shape[1], q_heads = q->shape[2];
    const int64_t head_dim = q->shape[3], kv_heads = k_cache->shape[2];
    const int64_t group = kv_heads == 0 ? 1 : q_heads / kv_heads;
    const int64_t count = new_tokens * group;
    size_t stride;
    char *scratch = q3_scratch_alloc(q3_attention_scratch(count, head_dim, longest) +
                                         sizeof(q3_query_row) * (size_t)count, &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate score scratch");
#pragma omp parallel for collapse(2) schedule(dynamic, 1) \
    if (q3_parallel(batch * new_tokens * q_heads * longest * head_dim))
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t kv = 0; kv < kv_heads; ++kv) {
            const int64_t len = q3_load_index(seq_lens, b * seq_lens->strides[0]);
            q3_kv_source src = {
                .k = k_cache, .v = v_cache,
                .k_base = kv * k_cache->strides[2], .v_base = kv * v_cache->strides[2],
                .k_pos = k_cache->strides[1], .v_pos = v_cache->strides[1],
                .k_block = k_cache->strides[0], .v_block = v_cache->strides[0],
                .k_dim = k_cache->strides[3], .v_dim = v_cache->strides[3],
                .table = table, .block_size = block_size,
            };
            if (table == NULL) {
                src.k_base += b * k_cache->strides[0];
                src.v_base += b * v_cache->strides[0];
            } else {
                src.table_base = b * table->strides[0];
                src.table_stride = table->strides[1];
            }
            char *mine = q3_scratch_for_thread(scratch, stride);
            q3_query_row *rows = (q3_query_row *)mine;
            int64_t filled = 0;
            for (int64_t s = 0; s < new_tokens; ++s) {
                for (int64_t h = kv * group; h < (kv + 1) * group; ++h) {
                    rows[filled++] = (q3_query_row){
                        .q_base = b * q->strides[0] + s * q->strides[1] + h * q->strides[2],
                        .out_base = b * out->strides[0] + s * out->strides[1] + h * out->strides[2],
                        .n = len - new_tokens + s + 1};
                }
            }
            q3_attention_rows(out, out->strides[3], q, q->strides[3], head_dim, &src, rows, filled, (float)scale,
                              mine + sizeof(q3_query_row) * (size_t)count);
        }
    }
    free(scratch);
    return Q3_OK;
}

int q3_attention_decode(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache,
                        q3_tensor seq_lens, double scale, void *stream) {
    Q3_ENTER("attention_decode", q3_check_attention_decode_call(op, &out, &q, &k_cache, &v_cache, &seq_lens, scale));
    int64_t longest;
    if ((status = check_seq_lens(op, &seq_lens, q.shape[1], k_cache.shape[1], &longest)) !=
        Q3_OK) {
        return status;
    }
    return run(op, &out, &q, &k_cache, &v_cache, NULL, 0, &seq_lens, longest, scale);
}

int q3_attention_decode_paged(q3_tensor out, q3_tensor q, q3_tensor k_cache, q3_tensor v_cache,
                              q3_tensor block_table, q3_tensor seq_lens, double scale,
                              void *stream) {
    Q3_ENTER("attention_decode_paged",
             q3_check_attention_decode_paged_call(op, &out, &q, &k_cache, &v_cache, &block_table, &seq_lens, scale));
    const int64_t num_blocks = k_cache.shape[0], block_size = k_cache.shape[1];
    const int64_t max_blocks = block_table.shape[1];
    int64_t longest;
    if ((status = check_seq_lens(op, &seq_lens, q.shape[1], max_blocks * block_size,
                                 &longest)) != Q3_OK) {
        return status;
    }
    for (int64_t b = 0; b < q.shape[0]; ++b) {
        const int64_t len = q3_load_index(&seq_lens, b * seq_lens.strides[0]);
        const int64_t used = (len + block_size - 1) / block_size;
        for (int64_t i = 0; i < used; ++i) {
            const int64_t block = q3_load_index(
                &block_table, b * block_table.strides[0] + i * block_table.strides[1]);
            if (block < 0 || block >= num_blocks) {
                return q3_fail(Q3_BAD_VALUE, op,
                               "tensor 'block_table' holds %lld at [%lld, %lld], outside "
                               "[0, %lld)",
                               (long long)block, (long long)b, (long long)i,
                               (long long)num_blocks);
            }
        }
    }
    return run(op, &out, &q, &k_cache, &v_cache, &block_table, block_size, &seq_lens, longest,
               scale);
}
