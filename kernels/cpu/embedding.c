/* Token embedding: out[..., :] = weight[ids[...], :]; every id is checked before any write. */
#include "common.h"
#include "entry.h"
#include "parallel.h"

int q3_embedding(q3_tensor out, q3_tensor ids, q3_tensor weight, void *stream) {
    Q3_ENTER("embedding", q3_check_embedding_call(op, &out, &ids, &weight));

    /* ids viewed as rows of a [numel, 1] matrix so that q3_row_offset walks its strides. */
    q3_tensor id_rows = ids;
    id_rows.ndim = ids.ndim + 1;
    id_rows.shape[ids.ndim] = 1;
    id_rows.strides[ids.ndim] = 1;
    const int64_t tokens = q3_numel(&ids);
    const int64_t vocab = weight.shape[0];
    for (int64_t t = 0; t < tokens; ++t) {
        int64_t id = q3_load_index(&ids, q3_row_offset(&id_rows, t));
        if (id < 0 || id >= vocab) {
            return q3_fail(Q3_BAD_VALUE, op,
                           "tensor 'ids' holds %lld at flat position %lld, outside the vocabulary "
                           "[0, %lld)",
                           (long long)id, (long long)t, (long long)vocab);
        }
    }
    const int64_t hidden = weight.shape[1];
    const size_t element = out.dtype == Q3_F32 ? 4 : 2;
#pragma omp parallel for schedule(static) if (q3_parallel(tokens * hidden))
    for (int64_t t = 0; t < tokens; ++t) {
        int64_t id = q3_load_index(&ids, q3_row_offset(&id_rows, t));
        const char *source = (const char *)weight.data + (size_t)(id * weight.strides[0]) * element;
        char *target = (char *)out.data + (size_t)q3_row_offset(&out, t) * element;
        if (out.strides[out.ndim - 1] == 1 && weight.strides[1] == 1) {
            memcpy(target, source, (size_t)hidden * element);
            continue;
        }
        for (int64_t c = 0; c < hidden; ++c) {
            memcpy(target + (size_t)(c * out.strides[out.ndim - 1]) * element,
                   source + (size_t)(c * weight.strides[1]) * element, element);
        }
    }
    return Q3_OK;
}
