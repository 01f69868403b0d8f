/* One query row of attention against positions 0 .. n-1 of a key/value store that is either
 * contiguous (position p at p * pos stride) or paged (position p in block
 * table[p / block_size] at offset p % block_size). Shared by prefill and both decode kernels. */
#ifndef Q3_CPU_ATTENTION_ROW_H
#define Q3_CPU_ATTENTION_ROW_H

#include "common.h"
#include "exp_float.h"
#include "row_io.h"
#include "simd.h"

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

/* sum of query[i] * key[i] in double, in vector lanes (an order that differs from a sequential sum below
 * double precision only). */
Q3_VECTOR_CLONES
static double q3_dot_chunk(const float *restrict query, const float *restrict key, int64_t n) {
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; ++i) dot += (double)query[i] * (double)key[i];
    return dot;
}

/* acc[i] += weight * value[i]. */
Q3_VECTOR_CLONES
static void q3_add_scaled_chunk(float *restrict acc, const float *restrict value, int64_t n, float weight) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) acc[i] += weight * value[i];
}

/* Scratch: 2 * head_dim + n floats. scores in float32 (dot products accumulated in double),
 * max-subtracted softmax in float32 (exp_float.h), P @ V accumulated in float32 in position order,
 * written once. Key and value rows are read a chunk at a time (row_io.h). */
static inline void q3_attention_row(const q3_tensor *out, int64_t out_base, int64_t out_dim,
                                    const q3_tensor *q, int64_t q_base, int64_t q_dim,
                                    int64_t head_dim, const q3_kv_source *src, int64_t n,
                                    float scale, float *scratch) {
    float *query = scratch, *acc = scratch + head_dim, *scores = scratch + 2 * head_dim;
    q3_chunk row;
    for (int64_t d = 0; d < head_dim; ++d) {
        query[d] = q3_load(q, q_base + d * q_dim);
        acc[d] = 0.0f;
    }
    float max_score = -INFINITY;
    for (int64_t p = 0; p < n; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        double dot = 0.0;
        for (int64_t c = 0; c < head_dim; c += Q3_ROW_CHUNK) {
            const int64_t length = q3_chunk_length(c, head_dim);
            q3_load_chunk(src->k, k_off + c * src->k_dim, src->k_dim, length, &row);
            dot += q3_dot_chunk(query + c, row.f, length);
        }
        const float score = (float)dot * scale;
        scores[p] = score;
        max_score = fmaxf(max_score, score);
    }
    double sum = 0.0;
    for (int64_t p = 0; p < n; ++p) {
        scores[p] = q3_exp(scores[p] - max_score);
        sum += scores[p];
    }
    const float total = (float)sum;
    for (int64_t p = 0; p < n; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        const float weight = scores[p] / total;
        for (int64_t c = 0; c < head_dim; c += Q3_ROW_CHUNK) {
            const int64_t length = q3_chunk_length(c, head_dim);
            q3_load_chunk(src->v, v_off + c * src->v_dim, src->v_dim, length, &row);
            q3_add_scaled_chunk(acc + c, row.f, length, weight);
        }
    }
    for (int64_t d = 0; d < head_dim; ++d) q3_store(out, out_base + d * out_dim, acc[d]);
}

#endif
