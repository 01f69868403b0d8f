/* Attention of query rows against positions 0 .. n-1 of a key/value store that is either
 * contiguous (position p at p * pos stride) or paged (position p in block
 * table[p / block_size] at offset p % block_size). Shared by prefill and both decode kernels. */
#ifndef Q3_CPU_ATTENTION_ROW_H
#define Q3_CPU_ATTENTION_ROW_H

#include "common.h"
#include "dot_rows.h"
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

/* acc_r[i] += weight[r] * value[i] for the four accumulators (each in position order, as alone). */
Q3_VECTOR_CLONES
static void q3_add_scaled_rows(float *restrict acc0, float *restrict acc1, float *restrict acc2, float *restrict acc3,
                               const float *restrict value, int64_t n, const float weight[Q3_DOT_ROWS]) {
    const float w0 = weight[0], w1 = weight[1], w2 = weight[2], w3 = weight[3];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        acc0[i] += w0 * value[i];
        acc1[i] += w1 * value[i];
        acc2[i] += w2 * value[i];
        acc3[i] += w3 * value[i];
    }
}

/* One query row: where its query and its output start, and how many positions (0 .. n-1) it attends to. */
typedef struct {
    int64_t q_base, out_base, n;
} q3_query_row;

/* Bytes of scratch q3_attention_rows needs for `count` rows of up to `longest` positions. */
static inline size_t q3_attention_scratch(int64_t count, int64_t head_dim, int64_t longest) {
    return sizeof(double) * (size_t)(count * head_dim) +
           sizeof(float) * (size_t)(count * (head_dim + longest + 1) + (1 + Q3_DOT_ROWS) * head_dim);
}

/* Attention of `count` query rows against one key/value source: each row computed as it would be alone
 * (scores in float32 from dot products accumulated in double, dot_rows.h, max-subtracted softmax in
 * float32 with exp_float.h, P @ V accumulated in float32 in position order, written once), every key and
 * value row read once for all of them, four rows at a time. Scratch: q3_attention_scratch(count,
 * head_dim, longest) bytes, 8-byte aligned. */
static inline void q3_attention_rows(const q3_tensor *out, int64_t out_dim, const q3_tensor *q, int64_t q_dim,
                                     int64_t head_dim, const q3_kv_source *src, const q3_query_row *rows,
                                     int64_t count, float scale, void *scratch) {
    int64_t longest = 0;
    for (int64_t r = 0; r < count; ++r) longest = rows[r].n > longest ? rows[r].n : longest;
    double *queries = scratch;                               /* row r's query at r * head_dim */
    float *largest = (float *)(queries + count * head_dim); /* each row's max score, then its exp sum */
    float *accs = largest + count;                           /* row r's accumulator at r * head_dim */
    float *scores = accs + count * head_dim;                 /* row r's scores at r * longest */
    float *buffer = scores + count * longest;                /* a widened key or value row */
    float *unused = buffer + head_dim;                       /* accumulators of a tile's absent rows */
    for (int64_t r = 0; r < count; ++r) {
        q3_double_row(q, rows[r].q_base, q_dim, head_dim, queries + r * head_dim);
        for (int64_t d = 0; d < head_dim; ++d) accs[r * head_dim + d] = 0.0f;
        largest[r] = -INFINITY;
    }
    for (int64_t p = 0; p < longest; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        const float *key = q3_float_row(src->k, k_off, src->k_dim, head_dim, buffer);
        for (int64_t r0 = 0; r0 < count; r0 += Q3_DOT_ROWS) {
            const int64_t tile = count - r0 < Q3_DOT_ROWS ? count - r0 : Q3_DOT_ROWS;
            double dots[Q3_DOT_ROWS];
            q3_dot_rows(queries + r0 * head_dim, head_dim, tile, key, head_dim, dots);
            for (int64_t r = r0; r < r0 + tile; ++r) {
                if (p >= rows[r].n) continue;
                const float score = (float)dots[r - r0] * scale;
                scores[r * longest + p] = score;
                largest[r] = fmaxf(largest[r], score);
            }
        }
    }
    for (int64_t r = 0; r < count; ++r) {
        double sum = 0.0;
        for (int64_t p = 0; p < rows[r].n; ++p) {
            scores[r * longest + p] = q3_exp(scores[r * longest + p] - largest[r]);
            sum += scores[r * longest + p];
        }
        largest[r] = (float)sum;
    }
    for (int64_t p = 0; p < longest; ++p) {
        int64_t k_off, v_off;
        q3_kv_offsets(src, p, &k_off, &v_off);
        const float *value = q3_float_row(src->v, v_off, src->v_dim, head_dim, buffer);
        for (int64_t r0 = 0; r0 < count; r0 += Q3_DOT_ROWS) {
            float *acc[Q3_DOT_ROWS];
            float weight[Q3_DOT_ROWS];
            for (int64_t i = 0; i < Q3_DOT_ROWS; ++i) {
                const int64_t r = r0 + i;
                const int present = r < count && p < rows[r].n;
                acc[i] = present ? accs + r * head_dim : unused + i * head_dim;
                weight[i] = present ? scores[r * longest + p] / largest[r] : 0.0f;
            }
            q3_add_scaled_rows(acc[0], acc[1], acc[2], acc[3], value, head_dim, weight);
        }
    }
    for (int64_t r = 0; r < count; ++r) {
        for (int64_t d = 0; d < head_dim; ++d) q3_store(out, rows[r].out_base + d * out_dim, accs[r * head_dim + d]);
    }
}

#endif
