/* Causal grouped-query attention over one sequence: q [T, Hq, D], k and v [T, Hkv, D];
 * query head h reads kv head h / (Hq / Hkv); token t attends to tokens 0 .. t. */
#include "attention_row.h"
#include "common.h"
#include "entry.h"
#include "scratch.h"
#include "parallel.h"

#define Q3_TILE_ROWS 16 /* query rows that share each key and value row read: tokens x the group's heads */

int q3_attention_prefill(q3_tensor out, q3_tensor q, q3_tensor k, q3_tensor v, double scale,
                         void *stream) {
    Q3_ENTER("attention_prefill", q3_check_attention_prefill_call(op, &out, &q, &k, &v, scale));
    const int64_t tokens = q.shape[0], q_heads = q.shape[1], head_dim = q.shape[2];
    const int64_t kv_heads = k.shape[1];
    const int64_t group = kv_heads == 0 ? 1 : q_heads / kv_heads;
    const int64_t tile = group >= Q3_TILE_ROWS ? 1 : Q3_TILE_ROWS / group; /* tokens a tile */
    const int64_t tiles = (tokens + tile - 1) / tile;

    size_t stride;
    char *scratch = q3_scratch_alloc(q3_attention_scratch(tile * group, head_dim, tokens) +
                                         sizeof(q3_query_row) * (size_t)(tile * group), &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate score scratch");
#pragma omp parallel for collapse(2) schedule(dynamic, 1) \
    if (q3_parallel(tokens * tokens * q_heads * head_dim))
    for (int64_t kv = 0; kv < kv_heads; ++kv) {
        for (int64_t first = 0; first < tiles; ++first) {
            const q3_kv_source src = {
                .k = &k, .v = &v,
                .k_base = kv * k.strides[1], .v_base = kv * v.strides[1],
                .k_pos = k.strides[0], .v_pos = v.strides[0],
                .k_dim = k.strides[2], .v_dim = v.strides[2],
                .table = NULL,
            };
            char *mine = q3_scratch_for_thread(scratch, stride);
            q3_query_row *rows = (q3_query_row *)mine;
            int64_t count = 0;
            for (int64_t t = first * tile; t < tokens && t < (first + 1) * tile; ++t) {
                for (int64_t h = kv * group; h < (kv + 1) * group; ++h) {
                    rows[count++] = (q3_query_row){.q_base = t * q.strides[0] + h * q.strides[1],
                                                   .out_base = t * out.strides[0] + h * out.strides[1], .n = t + 1};
                }
            }
            q3_attention_rows(&out, out.strides[2], &q, q.strides[2], head_dim, &src, rows, count, (float)scale,
                              mine + sizeof(q3_query_row) * (size_t)(tile * group));
        }
    }
    free(scratch);
    return Q3_OK;
}
