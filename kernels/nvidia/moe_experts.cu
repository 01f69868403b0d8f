// Qwen3-MoE experts: out[t] = sum_j weights[t, j] * down[e] @ (silu(g) * u), e = ids[t, j],
// g = gate_up[e, 0:I] @ x[t], u = gate_up[e, I:2I] @ x[t].
//
// Grouped by expert (the ids are read back for validation anyway, so the host sorts the (token,
// slot) pairs by expert, stably):
//   1. gather: xs[r] = x[token of sorted pair r] (x's dtype, contiguous rows);
//   2. per expert with tokens, one GEMM gu[rows of e] = xs[rows of e] @ gate_up[e]^T, float32 output;
//   3. act[r, i] = silu(g) * u in float32, rounded to x's dtype (Hugging Face's swiglu output dtype,
//      the operand of the next GEMM);
//   4. per expert, y[rows of e] = act[rows of e] @ down[e]^T, float32 output;
//   5. out[t] = sum_j weights[t, j] * y[row of (t, j)] in float32, in slot order, rounded once.
// The GEMMs are cuBLAS (float32 compute, tensor cores for f16/bf16) when it is loaded, one call per
// expert with tokens, spread over 4 side streams (forked from and joined back into the caller's
// stream by events) because each expert's GEMM alone is too small to fill the GPU; a weight
// layout cuBLAS cannot address (no unit stride per expert matrix, e.g. a fully reversed tensor) is
// first copied, in one tiled transposing pass, into a contiguous scratch. Without cuBLAS the tiled
// CUDA-core grouped GEMM of gemm_tiles.cuh reads the weights in place. No float atomics: every
// output element is written once by one thread.
#include <stdlib.h>

#include <type_traits>

#include "common.cuh"
#include "entry.h"
#include "cublas_loader.cuh"
#include "gemm_tiles.cuh"

namespace {

using q3gemm::GroupTile;

template <typename T>
__global__ void zero_kernel(q3_tensor out, int64_t rows, int64_t cols) {
    const int64_t col = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        static_cast<T *>(out.data)[row * out.strides[0] + col * out.strides[1]] = q3::from_float<T>(0.0f);
    }
}

// xs[r, :] = x[tokens[r], :]; 16-byte vectors when x rows are unit-stride and aligned.
template <typename T>
__global__ void gather_kernel(T *xs, q3_tensor x, const int32_t *tokens, int64_t rows, int64_t hidden, int vector) {
    const T *src = static_cast<const T *>(x.data);
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int64_t base = (int64_t)tokens[r] * x.strides[0];
        if (vector) {
            constexpr int kWidth = 16 / sizeof(T);
            const int64_t vecs = hidden / kWidth;
            for (int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; v < vecs; v += (int64_t)gridDim.x * blockDim.x) {
                reinterpret_cast<uint4 *>(xs + r * hidden)[v] = reinterpret_cast<const uint4 *>(src + base)[v];
            }
        } else {
            for (int64_t h = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; h < hidden; h += (int64_t)gridDim.x * blockDim.x) {
                xs[r * hidden + h] = src[base + h * x.strides[1]];
            }
        }
    }
}

// act[r, i] = silu(gu[r, i]) * gu[r, I + i], rounded to T.
template <typename T>
__global__ void act_kernel(T *act, const float *gu, int64_t rows, int64_t inter) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *g = gu + r * 2 * inter;
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < inter; i += (int64_t)gridDim.x * blockDim.x) {
            const float gf = g[i];
            act[r * inter + i] = q3::from_float<T>(gf / (1.0f + expf(-gf)) * g[inter + i]);
        }
    }
}

// out[t, h] = sum_j weights[t, j] * y[pos[t * k + j], h], float32, slot order, rounded once.
template <typename T>
__global__ void combine_kernel(q3_tensor out, q3_tensor weights, const float *y, const int32_t *pos, int64_t tokens,
                               int64_t top_k, int64_t hidden) {
    const int64_t h = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (h >= hidden) return;
    const T *w = static_cast<const T *>(weights.data);
    for (int64_t t = blockIdx.y; t < tokens; t += gridDim.y) {
        float acc = 0.0f;
        for (int64_t j = 0; j < top_k; ++j) {
            const float wj = q3::to_float(w[t * weights.strides[0] + j * weights.strides[1]]);
            acc += wj * y[(int64_t)pos[t * top_k + j] * hidden + h];
        }
        static_cast<T *>(out.data)[t * out.strides[0] + h * out.strides[1]] = q3::from_float<T>(acc);
    }
}

// dst (contiguous, strides dst_strides) = src (3-D, any strides), through 32 x 32 shared-memory tiles
// over dims a (dst's fastest) and b (src's fastest other dim), so both sides are read/written in runs.
template <typename T>
__global__ void copy3d_kernel(T *dst, q3_tensor src, int64_t dst_s0, int64_t dst_s1, int64_t dst_s2, int a, int b,
                              int c) {
    __shared__ T tile[32][33];
    const int64_t dst_strides[3] = {dst_s0, dst_s1, dst_s2};
    const int64_t na = src.shape[a], nb = src.shape[b], nc = src.shape[c];
    const T *in = static_cast<const T *>(src.data);
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t tiles_b = (nb + 31) / 32;
    for (int64_t ic = blockIdx.z; ic < nc; ic += gridDim.z) {
        for (int64_t tb = blockIdx.y; tb < tiles_b; tb += gridDim.y) {
            const int64_t a0 = (int64_t)blockIdx.x * 32, b0 = tb * 32;
            for (int i = ty; i < 32; i += 8) {
                const int64_t ia = a0 + i, ib = b0 + tx;
                if (ia < na && ib < nb) {
                    tile[i][tx] = in[ia * src.strides[a] + ib * src.strides[b] + ic * src.strides[c]];
                }
            }
            __syncthreads();
            for (int i = ty; i < 32; i += 8) {
                const int64_t ia = a0 + tx, ib = b0 + i;
                if (ia < na && ib < nb) {
                    dst[ia * dst_strides[a] + ib * dst_strides[b] + ic * dst_strides[c]] = tile[tx][i];
                }
            }
            __syncthreads();
        }
    }
}

struct DeviceBuffers {
    cudaStream_t stream;
    void *ptrs[8] = {};
    int count = 0;
    void *alloc(size_t bytes) {
        void *p = nullptr;
        if (cudaMallocAsync(&p, bytes > 0 ? bytes : 16, stream) != cudaSuccess) {
            cudaGetLastError();
            return nullptr;
        }
        ptrs[count++] = p;
        return p;
    }
    ~DeviceBuffers() {
        for (int i = 0; i < count; ++i) cudaFreeAsync(ptrs[i], stream);
    }
};

// A contiguous copy of a 3-D weight whose expert matrices cuBLAS cannot address (or, for float32,
// are not row-major), laid out so that each expert matrix keeps the finer of its two strides as the
// unit one (row-major for float32). NULL data when out of memory.
template <typename T>
q3_tensor contiguous_weight(const q3_tensor &w, DeviceBuffers &buffers, cudaStream_t stream) {
    q3_tensor copy = w;
    copy.data = nullptr;
    const int64_t rows = w.shape[1], cols = w.shape[2];
    void *data = buffers.alloc(sizeof(T) * (size_t)(w.shape[0] * rows * cols));
    if (data == nullptr) return copy;
    copy.data = data;
    copy.strides[0] = rows * cols;
    int a;  // dst's fastest dim
    if (w.strides[1] < w.strides[2] && !std::is_same<T, float>::value) {
        copy.strides[1] = 1, copy.strides[2] = rows, a = 1;
    } else {
        copy.strides[1] = cols, copy.strides[2] = 1, a = 2;
    }
    // b: src's fastest dim other than a (among dims of size > 1 where possible).
    int b = -1;
    for (int d = 0; d < 3; ++d) {
        if (d == a) continue;
        if (b < 0 || (w.shape[d] > 1 && (w.shape[b] <= 1 || w.strides[d] < w.strides[b]))) b = d;
    }
    const int c = 3 - a - b;
    const int64_t blocks_x = (w.shape[a] + 31) / 32, tiles_b = (w.shape[b] + 31) / 32;
    const dim3 grid((unsigned)blocks_x, (unsigned)(tiles_b < 65535 ? tiles_b : 65535),
                    (unsigned)(w.shape[c] < 65535 ? w.shape[c] : 65535));
    copy3d_kernel<T><<<grid, dim3(32, 8), 0, stream>>>(static_cast<T *>(data), w, copy.strides[0], copy.strides[1],
                                                        copy.strides[2], a, b, c);
    return copy;
}

// C rows [offset, offset + count) of each expert = A rows @ W[e]^T with cuBLAS: C (n_out x count, column-
// major, ldc = n_out) = op(W[e]) (n_out x k) A^T (k x count). The experts' GEMMs are independent and
// each too small to fill the GPU, so they go round-robin to Q3_SIDE_STREAMS side streams (joined
// back into `stream` before returning). False when any call is refused (the caller then recomputes
// all of C).
bool grouped_cublas(q3_cublas_handle_t handle, cudaStream_t stream, const q3_tensor &w, int type, const void *a,
                    float *c, int64_t n_out, int64_t k, const int64_t *offsets, int64_t experts, size_t element) {
    int op = 0;
    int64_t ld = 0;
    if (!q3_cublas_operand(n_out, k, w.strides[1], w.strides[2], &op, &ld)) return false;
    int64_t active = 0;
    for (int64_t e = 0; e < experts; ++e) active += offsets[e + 1] > offsets[e];
    cudaStream_t side[Q3_SIDE_STREAMS];
    q3_cublas_handle_t side_handles[Q3_SIDE_STREAMS];
    const bool forked = active > 1 && q3_side_fork(stream, side, side_handles);
    bool ok = true;
    int64_t issued = 0;
    for (int64_t e = 0; ok && e < experts; ++e) {
        const int64_t count = offsets[e + 1] - offsets[e];
        if (count == 0) continue;
        const char *we = static_cast<const char *>(w.data) + (size_t)(e * w.strides[0]) * element;
        const char *ae = static_cast<const char *>(a) + (size_t)(offsets[e] * k) * element;
        q3_cublas_handle_t h = forked ? side_handles[issued % Q3_SIDE_STREAMS] : handle;
        ++issued;
        ok = q3_cublas_gemm(h, op, Q3_CUBLAS_OP_N, n_out, count, k, 1.0f, we, type, ld, ae, type, k, 0.0f,
                            c + offsets[e] * n_out, Q3_CUDA_R_32F, n_out) == 0;
    }
    if (forked) q3_side_join(stream);
    return ok;
}

// Whether cuBLAS can take the expert matrices of w as they are (see run_experts).
template <typename T>
bool cublas_ready(const q3_tensor &w) {
    int op = 0;
    int64_t ld = 0;
    if (!q3_cublas_operand(w.shape[1], w.shape[2], w.strides[1], w.strides[2], &op, &ld)) return false;
    return !std::is_same<T, float>::value || op == Q3_CUBLAS_OP_T || w.shape[1] <= 1;
}

template <typename T>
int run_experts(const char *op, q3_tensor out, q3_tensor x, q3_tensor weights, q3_tensor gate_up, q3_tensor down,
                const int64_t *offsets, const int32_t *host_index, int64_t pairs, int64_t tiles, int64_t tokens,
                int64_t top_k, int64_t hidden, int64_t inter, int64_t experts, cudaStream_t stream) {
    DeviceBuffers buffers{stream};
    const size_t element = sizeof(T);
    const size_t index_bytes = sizeof(int32_t) * (size_t)(2 * pairs) + sizeof(GroupTile) * (size_t)tiles;
    const size_t r1 = sizeof(float) * (size_t)pairs * (size_t)(2 * inter > hidden ? 2 * inter : hidden);
    const size_t r2 = element * (size_t)pairs * (size_t)(hidden > inter ? hidden : inter);
    char *index = static_cast<char *>(buffers.alloc(index_bytes));
    float *region1 = static_cast<float *>(buffers.alloc(r1));
    T *region2 = static_cast<T *>(buffers.alloc(r2));
    if (index == nullptr || region1 == nullptr || region2 == nullptr) {
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate %zu bytes of expert scratch", index_bytes + r1 + r2);
    }
    // From pageable memory: returns once the data is staged, so the host array may be freed after.
    if (cudaMemcpyAsync(index, host_index, index_bytes, cudaMemcpyHostToDevice, stream) != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_LAUNCH_FAILED, op, "copying the expert grouping to the device failed");
    }
    const int32_t *row_token = reinterpret_cast<const int32_t *>(index);
    const int32_t *pair_pos = row_token + pairs;
    const GroupTile *tile_list = reinterpret_cast<const GroupTile *>(pair_pos + pairs);
    float *gu = region1, *y = region1;
    T *xs = region2, *act = region2;
    const int type = q3_cublas_type(x.dtype);
    q3_cublas_handle_t handle = q3_cublas_handle(stream);

    // Weights cuBLAS cannot address get a contiguous copy (only when cuBLAS is there to use it).
    // Float32 takes cuBLAS only as op_T(W) op_N(A), PyTorch's form: its float32 kernels for the other
    // transpose combinations accumulate long k runs serially (measured several times the error).
    if (handle != nullptr && !cublas_ready<T>(gate_up)) {
        q3_tensor copy = contiguous_weight<T>(gate_up, buffers, stream);
        if (copy.data != nullptr) gate_up = copy;
    }
    if (handle != nullptr && !cublas_ready<T>(down)) {
        q3_tensor copy = contiguous_weight<T>(down, buffers, stream);
        if (copy.data != nullptr) down = copy;
    }

    const int threads = 256;
    const unsigned row_blocks = (unsigned)(pairs < 65535 ? pairs : 65535);
    {
        const int width = 16 / (int)element;
        const int vector = x.strides[1] == 1 && hidden % width == 0 &&
                           reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && (x.strides[0] * (int64_t)element) % 16 == 0;
        const int64_t per_row = vector ? hidden / width : hidden;
        int64_t bx = (per_row + threads - 1) / threads;
        if (bx > 64) bx = 64;
        gather_kernel<T><<<dim3((unsigned)bx, row_blocks), threads, 0, stream>>>(xs, x, row_token, pairs, hidden, vector);
    }
    if (handle == nullptr ||
        !grouped_cublas(handle, stream, gate_up, type, xs, gu, 2 * inter, hidden, offsets, experts, element)) {
        q3gemm::GroupedProblem<T, T> p = {tile_list, xs, hidden, gate_up, gu, 2 * inter, 2 * inter, hidden};
        q3gemm::launch_tiled_gemm(p, tiles, 2 * inter, stream);
    }
    {
        int64_t bx = (inter + threads - 1) / threads;
        if (bx > 64) bx = 64;
        act_kernel<T><<<dim3((unsigned)bx, row_blocks), threads, 0, stream>>>(act, gu, pairs, inter);
    }
    if (handle == nullptr || !grouped_cublas(handle, stream, down, type, act, y, hidden, inter, offsets, experts, element)) {
        q3gemm::GroupedProblem<T, T> p = {tile_list, act, inter, down, y, hidden, hidden, inter};
        q3gemm::launch_tiled_gemm(p, tiles, hidden, stream);
    }
    {
        const int64_t bx = (hidden + threads - 1) / threads;
        const unsigned by = (unsigned)(tokens < 65535 ? tokens : 65535);
        combine_kernel<T><<<dim3((unsigned)bx, by), threads, 0, stream>>>(out, weights, y, pair_pos, tokens, top_k,
                                                                          hidden);
    }
    return q3_cuda_launch_status(op);
}

}  // namespace

int q3_moe_experts(q3_tensor out, q3_tensor x, q3_tensor weights, q3_tensor ids, q3_tensor gate_up,
                   q3_tensor down, void *stream) {
    Q3_ENTER("moe_experts", q3_check_moe_experts_call(op, &out, &x, &weights, &ids, &gate_up, &down));
    const int64_t tokens = x.shape[0], hidden = x.shape[1], top_k = weights.shape[1];
    const int64_t experts = gate_up.shape[0], inter = gate_up.shape[1] / 2;

    cudaStream_t s = (cudaStream_t)stream;
    const int64_t pairs = tokens * top_k;
    int64_t *id_values = NULL;
    if (pairs > 0) {
        id_values = q3_cuda_indices_to_host(op, "ids", &ids, s, &status);
        if (id_values == NULL) return status;
    }
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < top_k; ++j) {
            const int64_t e = id_values[t * top_k + j];
            if (e < 0 || e >= experts) {
                free(id_values);
                return q3_fail(Q3_BAD_VALUE, op,
                               "tensor 'ids' holds %lld at [%lld, %lld], outside [0, %lld)",
                               (long long)e, (long long)t, (long long)j, (long long)experts);
            }
        }
    }
    if (tokens == 0 || hidden == 0) {
        free(id_values);
        return Q3_OK;
    }
    if (top_k == 0 || inter == 0) {  // nothing to add: out = 0
        free(id_values);
        const unsigned by = (unsigned)(tokens < 65535 ? tokens : 65535);
        Q3_DISPATCH_FLOAT(out.dtype, T,
                          zero_kernel<T><<<dim3((unsigned)((hidden + 255) / 256), by), 256, 0, s>>>(out, tokens, hidden));
        return q3_cuda_launch_status(op);
    }
    if (pairs > INT32_MAX / 2 || tokens > INT32_MAX) {
        free(id_values);
        return q3_fail(Q3_UNSUPPORTED, op, "%lld (token, expert) pairs: at most %d are supported", (long long)pairs,
                       INT32_MAX / 2);
    }

    // Stable grouping of the pairs by expert; tiles of 64 rows for the CUDA-core fallback.
    int64_t *offsets = (int64_t *)calloc((size_t)experts + 1, sizeof(int64_t));
    int64_t *fill = (int64_t *)calloc((size_t)experts + 1, sizeof(int64_t));
    int64_t tiles = 0;
    if (offsets != NULL && fill != NULL) {
        for (int64_t p = 0; p < pairs; ++p) offsets[id_values[p] + 1] += 1;
        for (int64_t e = 0; e < experts; ++e) {
            tiles += (offsets[e + 1] + q3gemm::kBM - 1) / q3gemm::kBM;
            offsets[e + 1] += offsets[e];
        }
    }
    const size_t index_bytes = sizeof(int32_t) * (size_t)(2 * pairs) + sizeof(GroupTile) * (size_t)tiles;
    int32_t *host_index = offsets != NULL && fill != NULL ? (int32_t *)malloc(index_bytes) : NULL;
    if (host_index == NULL) {
        free(id_values);
        free(offsets);
        free(fill);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the expert grouping");
    }
    int32_t *row_token = host_index, *pair_pos = host_index + pairs;
    GroupTile *tile_list = reinterpret_cast<GroupTile *>(pair_pos + pairs);
    for (int64_t p = 0; p < pairs; ++p) {
        const int64_t e = id_values[p];
        const int64_t row = offsets[e] + fill[e]++;
        row_token[row] = (int32_t)(p / top_k);
        pair_pos[p] = (int32_t)row;
    }
    int64_t tile = 0;
    for (int64_t e = 0; e < experts; ++e) {
        for (int64_t m = offsets[e]; m < offsets[e + 1]; m += q3gemm::kBM) {
            const int64_t end = m + q3gemm::kBM < offsets[e + 1] ? m + q3gemm::kBM : offsets[e + 1];
            tile_list[tile++] = GroupTile{(int32_t)e, (int32_t)m, (int32_t)end, 0};
        }
    }
    free(id_values);
    free(fill);

    status = Q3_OK;
    Q3_DISPATCH_FLOAT(x.dtype, T,
                      status = run_experts<T>(op, out, x, weights, gate_up, down, offsets, host_index, pairs, tiles,
                                              tokens, top_k, hidden, inter, experts, s));
    free(host_index);
    free(offsets);
    return status;
}
