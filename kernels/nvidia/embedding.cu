// Token embedding: out[..., :] = weight[ids[...], :]. Every id is checked against the vocabulary on
// the device before any write, without a host synchronisation (deferred_check.cuh: a bad id makes
// the call write nothing and is reported by q3_take_deferred_error); then a gather of whole rows (a
// block row takes one token at a time for few tokens, 8 at a time for many), one 16-byte pack per
// thread and token on the fast path (one element otherwise), bits copied unchanged.
#include <stdlib.h>

#include "deferred_check.cuh"
#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

// Few tokens (decode): block row y takes tokens y, y + gridDim.y, ..., one at a time.
template <typename T, int N>
__global__ void __launch_bounds__(256) embedding_kernel(q3_tensor out, q3_tensor id_rows, q3_tensor weight,
                                                        int64_t tokens, int64_t items_per_row, IndexGuard guard) {
    if (write_blocked(guard)) return;
    const int64_t os = out.strides[out.ndim - 1], ws = weight.strides[1];
    const int64_t item = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= items_per_row) return;
    for (int64_t row = blockIdx.y; row < tokens; row += gridDim.y) {
        const int64_t id = q3::load_index(id_rows, row_offset(id_rows, row));
        const T *source = static_cast<const T *>(weight.data) + id * weight.strides[0];
        T *target = static_cast<T *>(out.data) + row_offset(out, row);
        store_item<T, N>(target, os, item, load_item<T, N>(source, ws, item));
    }
}

// Many tokens (prefill): a block row takes MAX_ROWS at once, their ids read beside the check's flag and
// their packs all loaded before any is stored, so a thread keeps MAX_ROWS 16-byte loads in flight
// (T=4096 on an H200: 32 -> 25 us; at T=1 and 32 it measured 1.1 us slower than the kernel above,
// which decode sizes keep).
constexpr int MAX_ROWS = 8;

template <typename T, int N>
__global__ void __launch_bounds__(256) embedding_rows_kernel(q3_tensor out, q3_tensor id_rows, q3_tensor weight,
                                                             int64_t tokens, int64_t items_per_row, int rows_per_block,
                                                             IndexGuard guard) {
    const int64_t os = out.strides[out.ndim - 1], ws = weight.strides[1];
    const int64_t item = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t step = (int64_t)gridDim.y * rows_per_block;
    const int64_t start = (int64_t)blockIdx.y * rows_per_block;
    int64_t ids[MAX_ROWS];
    // The ids tensor is readable whatever it holds: the first rows' ids load beside the check's flag.
    // The weight rows are read only after the check.
#pragma unroll
    for (int r = 0; r < MAX_ROWS; ++r) {
        if (r < rows_per_block && start + r < tokens) ids[r] = q3::load_index(id_rows, row_offset(id_rows, start + r));
    }
    if (write_blocked(guard) || item >= items_per_row) return;
    for (int64_t first = start; first < tokens; first += step) {
        if (first != start) {
#pragma unroll
            for (int r = 0; r < MAX_ROWS; ++r) {
                if (r < rows_per_block && first + r < tokens) {
                    ids[r] = q3::load_index(id_rows, row_offset(id_rows, first + r));
                }
            }
        }
        Pack<T, N> packs[MAX_ROWS];
#pragma unroll
        for (int r = 0; r < MAX_ROWS; ++r) {
            if (r < rows_per_block && first + r < tokens) {
                packs[r] = load_item<T, N>(static_cast<const T *>(weight.data) + ids[r] * weight.strides[0], ws, item);
            }
        }
#pragma unroll
        for (int r = 0; r < MAX_ROWS; ++r) {
            if (r < rows_per_block && first + r < tokens) {
                store_item<T, N>(static_cast<T *>(out.data) + row_offset(out, first + r), os, item, packs[r]);
            }
        }
    }
}

template <typename T, int N>
void launch_n(const q3_tensor &out, const q3_tensor &id_rows, const q3_tensor &weight, int64_t tokens,
              int64_t hidden, const IndexGuard &guard, int sms, cudaStream_t stream) {
    const int64_t items_per_row = hidden / N;
    // Several rows a block row once there are enough tokens for every multiprocessor to get a few.
    int rows_per_block = 1;
    while (rows_per_block < MAX_ROWS && tokens >= 2 * (int64_t)rows_per_block * 4 * sms) rows_per_block *= 2;
    int64_t block_rows = ceil_div(tokens, rows_per_block);
    if (block_rows > 65535) block_rows = 65535;
    const dim3 grid((unsigned)ceil_div(items_per_row, 256), (unsigned)block_rows);
    if (rows_per_block == 1) {
        embedding_kernel<T, N><<<grid, 256, 0, stream>>>(out, id_rows, weight, tokens, items_per_row, guard);
    } else {
        embedding_rows_kernel<T, N><<<grid, 256, 0, stream>>>(out, id_rows, weight, tokens, items_per_row,
                                                               rows_per_block, guard);
    }
}

// T: an unsigned integer of the element's size (the gather copies bits).
template <typename T>
void launch(const q3_tensor &out, const q3_tensor &id_rows, const q3_tensor &weight, int64_t tokens, int64_t hidden,
            const IndexGuard &guard, int sms, cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    if (hidden % V == 0 && rows_vectorizable(out, V) && rows_vectorizable(weight, V)) {
        launch_n<T, V>(out, id_rows, weight, tokens, hidden, guard, sms, stream);
    } else {
        launch_n<T, 1>(out, id_rows, weight, tokens, hidden, guard, sms, stream);
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
    const int64_t vocab = weight.shape[0], hidden = weight.shape[1];
    if (tokens == 0) return Q3_OK;
    if (hidden == 0) return check_ids_on_host(op, ids, vocab, s);  // nothing to gather: checked at once
    int sms = 0;
    if ((status = sm_count(op, &sms)) != Q3_OK) return status;
    IndexGuard guard;
    bool on_host;
    const CheckSpec spec = {"ids", DEFERRED_IDS, 0, vocab, 1, false, nullptr, 0};
    if ((status = check_deferred(op, spec, ids, s, &guard, &on_host)) != Q3_OK) return status;
    /* ids viewed as rows of a [numel, 1] matrix so that row_offset walks its strides. */
    q3_tensor id_rows = ids;
    id_rows.ndim = ids.ndim + 1;
    id_rows.shape[ids.ndim] = 1;
    id_rows.strides[ids.ndim] = 1;
    q3_tensor *const tensors[] = {&out, &id_rows};
    collapse(tensors, 2, true);
    if (out.dtype == Q3_F32) {
        launch<uint32_t>(out, id_rows, weight, tokens, hidden, guard, sms, s);
    } else {
        launch<uint16_t>(out, id_rows, weight, tokens, hidden, guard, sms, s);
    }
    if ((status = q3_cuda_launch_status(op)) != Q3_OK) withdraw_check(&guard, s);
    return status;
}
