// Token embedding: out[..., :] = weight[ids[...], :]. Every id is checked against the vocabulary on
// the device before any write (index_check.cuh; ids are read back to the host only to name a bad
// one); then a gather of whole rows, one 16-byte pack per thread on the fast path (one element
// otherwise), bits copied unchanged.
#include <stdlib.h>

#include "entry.h"
#include "index_check.cuh"
#include "rows.cuh"

namespace {

using namespace q3r;

template <typename T, int N, typename I>
__global__ void __launch_bounds__(256) embedding_kernel(q3_tensor out, q3_tensor id_rows, q3_tensor weight, I total,
                                                        I items_per_row) {
    const int64_t os = out.strides[out.ndim - 1], ws = weight.strides[1];
    const I step = (I)gridDim.x * (I)blockDim.x;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += step) {
        const I row = i / items_per_row, item = i - row * items_per_row;
        const int64_t id = q3::load_index(id_rows, row_offset(id_rows, (int64_t)row));
        const T *source = static_cast<const T *>(weight.data) + id * weight.strides[0];
        T *target = static_cast<T *>(out.data) + row_offset(out, (int64_t)row);
        store_item<T, N>(target, os, (int64_t)item, load_item<T, N>(source, ws, (int64_t)item));
    }
}

template <typename T, int N>
void launch_n(const q3_tensor &out, const q3_tensor &id_rows, const q3_tensor &weight, int64_t tokens,
              int64_t hidden, cudaStream_t stream) {
    const int64_t items_per_row = hidden / N, total = tokens * items_per_row;
    int64_t blocks = ceil_div(total, 256);
    if (blocks > ((int64_t)1 << 22)) blocks = (int64_t)1 << 22;  // grid-stride step <= 2^30
    if (total <= ((int64_t)1 << 31)) {
        embedding_kernel<T, N, uint32_t><<<(unsigned)blocks, 256, 0, stream>>>(out, id_rows, weight, (uint32_t)total,
                                                                              (uint32_t)items_per_row);
    } else {
        embedding_kernel<T, N, uint64_t><<<(unsigned)blocks, 256, 0, stream>>>(out, id_rows, weight, (uint64_t)total,
                                                                              (uint64_t)items_per_row);
    }
}

// T: an unsigned integer of the element's size (the gather copies bits).
template <typename T>
void launch(const q3_tensor &out, const q3_tensor &id_rows, const q3_tensor &weight, int64_t tokens, int64_t hidden,
            cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    if (hidden % V == 0 && rows_vectorizable(out, V) && rows_vectorizable(weight, V)) {
        launch_n<T, V>(out, id_rows, weight, tokens, hidden, stream);
    } else {
        launch_n<T, 1>(out, id_rows, weight, tokens, hidden, stream);
    }
}

// The first id outside [0, vocab) in row-major order, named in the error.
int check_ids_on_host(const char *op, const q3_tensor &ids, int64_t vocab, cudaStream_t stream) {
    int status;
    int64_t *host_ids = q3_cuda_indices_to_host(op, "ids", &ids, stream, &status);
    if (host_ids == NULL) return status;
    const int64_t tokens = q3_numel(&ids);
    for (int64_t t = 0; t < tokens; ++t) {
        const int64_t id = host_ids[t];
        if (id < 0 || id >= vocab) {
            free(host_ids);
            return q3_fail(Q3_BAD_VALUE, op,
                           "tensor 'ids' holds %lld at flat position %lld, outside the vocabulary "
                           "[0, %lld)",
                           (long long)id, (long long)t, (long long)vocab);
        }
    }
    free(host_ids);
    return Q3_OK;
}

}  // namespace

int q3_embedding(q3_tensor out, q3_tensor ids, q3_tensor weight, void *stream) {
    Q3_ENTER("embedding", q3_check_embedding_call(op, &out, &ids, &weight));

    cudaStream_t s = (cudaStream_t)stream;
    const int64_t tokens = q3_numel(&ids);
    const int64_t vocab = weight.shape[0];
    bool valid;
    if ((status = check_indices_on_device(op, "ids", ids, vocab, 0, s, &valid)) != Q3_OK) return status;
    if (!valid && (status = check_ids_on_host(op, ids, vocab, s)) != Q3_OK) return status;

    const int64_t hidden = weight.shape[1];
    if (tokens == 0 || hidden == 0) return Q3_OK;
    /* ids viewed as rows of a [numel, 1] matrix so that row_offset walks its strides. */
    q3_tensor id_rows = ids;
    id_rows.ndim = ids.ndim + 1;
    id_rows.shape[ids.ndim] = 1;
    id_rows.strides[ids.ndim] = 1;
    q3_tensor *const tensors[] = {&out, &id_rows};
    collapse(tensors, 2, true);
    if (out.dtype == Q3_F32) {
        launch<uint32_t>(out, id_rows, weight, tokens, hidden, s);
    } else {
        launch<uint16_t>(out, id_rows, weight, tokens, hidden, s);
    }
    return q3_cuda_launch_status(op);
}
