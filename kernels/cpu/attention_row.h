/* Attention of query rows against positions 0 .. n-1 of a key/value store that is either
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

/* One query row: where its query and its output start, and how many positions (0 .. n-1) it attends to. */
typedef struct {
    int64_t q_base, out_base, n;
} q3_query_row;

/* Bytes of scratch q3_attention_rows needs for `count` rows of up to `longest` positions. */
static inline size_t q3_attention_scratch(int64_t count, int64_t head_dim, int64_t longest) {
    return sizeof(double) * (size_t)count + sizeof(float) * (size_t)(count * (2 * head_dim + longest + 1));
}

/* Attention of `count` query rows against one key/value source: each row computed as it would be alone
 * (scores in float32 from dot products accumulated in double a chunk at a time, max-subtracted softmax in
 * float32 with exp_float.h, P @ V accumulated in float32 in position order, written once), every key and
 * value row read once for all of them. Scratch: q3_attention_scratch(count, head_dim, longest) bytes,
 * 8-byte aligned. */
static inline void q3_attention_rows(const q3_tensor *out, int64_t out_dim, const q3_tensor *q, int64_t q_dim,
                                     int64_t head_dim, const q3_kv_source *src, const q3_query_row *rows,
                                     int64_t count, float scale, void *scratch) {
    int64_t longest = 0;
    for (int64_t r = 0; r < count; ++r) longest = rows[r].n > longest ? rows[r].n : longest;
    double *dots = scratch;
    float *largest = (float *)(dots + count); /* each row's max score, then its exp sum */
    float *rows_base = largest + count;  /* row r: its query, accumulator (head_dim each), scores */
    const int64_t width = 2 * head_dim + longest;
    for (int64_t r = 0; r < count; ++r) {
        float *query = rows_base + r * width, *acc = query + head_dim;
        for (int64_t d = 0; d < head_dim; ++d) {
            query[d] = q3_load(q, rows[r].q_base + d * q_dim);
            acc[d] = 0.0f;
        }
        largest[r] = -INFINITY;
    }
    q3_chunk row;
    for (int64_t p = 0; p < longest; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        for (int64_t r = 0; r < count; ++r) dots[r] = 0.0;
        for (int64_t c = 0; c < head_dim; c += Q3_ROW_CHUNK) {
            const int64_t length = q3_chunk_length(c, head_dim);
            q3_load_chunk(src->k, k_off + c * src->k_dim, src->k_dim, length, &row);
            for (int64_t r = 0; r < count; ++r) {
                if (p < rows[r].n) dots[r] += q3_dot_chunk(rows_base + r * width + c, row.f, length);
            }
        }
        for (int64_t r = 0; r < count; ++r) {
            if (p >= rows[r].n) continue;
            const float score = (float)dots[r] * scale;
            rows_base[r * width + 2 * head_dim + p] = score;
            largest[r] = fmaxf(largest[r], score);
        }
    }
    for (int64_t r = 0; r < count; ++r) {
        float *scores = rows_base + r * width + 2 * head_dim;
        double sum = 0.0;
        for (int64_t p = 0; p < rows[r].n; ++p) {
            scores[p] = q3_exp(scores[p] - largest[r]);
            sum += scores[p];
        }
        largest[r] = (float)sum;
    }
    for (int64_t p = 0; p < longest; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        for (int64_t c = 0; c < head_dim; c += Q3_ROW_CHUNK) {
            const int64_t length = q3_chunk_length(c, head_dim);
            q3_load_chunk(src->v, v_off + c * src->v_dim, src->v_dim, length, &row);
            for (int64_t r = 0; r < count; ++r) {
                float *acc = rows_base + r * width + head_dim, *scores = acc + head_dim;
                if (p < rows[r].n) q3_add_scaled_chunk(acc + c, row.f, length, scores[p] / largest[r]);
            }
        }
    }
    for (int64_t r = 0; r < count; ++r) {
        const float *acc = rows_base + r * width + head_dim;
        for (int64_t d = 0; d < head_dim; ++d) q3_store(out, rows[r].out_base + d * out_dim, acc[d]);
    }
}

#endif
