/* One query row of attention against positions 0 .. n-1 of a key/value store that is either
 * contiguous (position p at p * pos stride) or paged (position p in block
 * table[p / block_size] at offset p % block_size). Shared by prefill and both decode kernels. */
#ifndef Q3_CPU_ATTENTION_ROW_H
#define Q3_CPU_ATTENTION_ROW_H

#include "common.h"

typedef struct {
    const q3_tensor *k, *v;
    int64_t k_base, v_base;   /* offset of the (request, kv head) pair */
    int64_t k_pos, v_pos;     /* stride of one position (inside a block when paged) */
    int64_t k_block, v_block; /* stride of one block (paged only) */
    int64_t k_dim, v_dim;     /* stride of head_dim */
    const q3_tensor *table;   /* block table, or NULL for a contiguous store */
    int64_t table_base, table_stride, block_size;
} q3_kv_source;

static inline void q3_kv_offsets(const q3_kv_source *src, int64_t p, int64_t *k_off,
                                 int64_t *v_off) {
    if (src->table == NULL) {
        *k_off = src->k_base + p * src->k_pos;
        *v_off = src->v_base + p * src->v_pos;
        return;
    }
    const int64_t block = q3_load_index(
        src->table, src->table_base + (p / src->block_size) * src->table_stride);
    const int64_t within = p % src->block_size;
    *k_off = src->k_base + block * src->k_block + within * src->k_pos;
    *v_off = src->v_base + block * src->v_block + within * src->v_pos;
}

/* Scratch: 2 * head_dim + n floats. scores in float32 (dot products accumulated in double),
 * max-subtracted softmax in float32, P @ V accumulated in float32, written once. */
static inline void q3_attention_row(const q3_tensor *out, int64_t out_base, int64_t out_dim,
                                    const q3_tensor *q, int64_t q_base, int64_t q_dim,
                                    int64_t head_dim, const q3_kv_source *src, int64_t n,
                                    float scale, float *scratch) {
    float *query = scratch, *acc = scratch + head_dim, *scores = scratch + 2 * head_dim;
    for (int64_t d = 0; d < head_dim; ++d) {
        query[d] = q3_load(q, q_base + d * q_dim);
        acc[d] = 0.0f;
    }
    float max_score = -INFINITY;
    for (int64_t p = 0; p < n; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        double dot = 0.0;
        for (int64_t d = 0; d < head_dim; ++d) {
            dot += (double)query[d] * q3_load(src->k, k_off + d * src->k_dim);
        }
        const float score = (float)dot * scale;
        scores[p] = score;
        max_score = fmaxf(max_score, score);
    }
    double sum = 0.0;
    for (int64_t p = 0; p < n; ++p) {
        scores[p] = expf(scores[p] - max_score);
        sum += scores[p];
    }
    const float total = (float)sum;
    for (int64_t p = 0; p < n; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        const float weight = scores[p] / total;
        for (int64_t d = 0; d < head_dim; ++d) {
            acc[d] += weight * q3_load(src->v, v_off + d * src->v_dim);
        }
    }
    for (int64_t d = 0; d < head_dim; ++d) q3_store(out, out_base + d * out_dim, acc[d]);
}

#endif
