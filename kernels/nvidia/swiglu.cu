// SwiGLU activation of the Qwen3 MLP: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)) in
// float32. The tensors' dims are merged where all three layouts allow (a contiguous call becomes
// one row; a fused gate_up view stays [rows, I] with row stride 2I); each thread then handles one
// 16-byte pack (fast path) or one element of a flat grid-stride range.
#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

template <typename T, int N, typename I>
__global__ void __launch_bounds__(256) swiglu_kernel(q3_tensor out, q3_tensor gate, q3_tensor up, I total,
                                                     I items_per_row) {
    const int last = gate.ndim - 1;
    const int64_t gs = gate.strides[last], us = up.strides[last], os = out.strides[last];
    const I step = (I)gridDim.x * (I)blockDim.x;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += step) {
        const I row = i / items_per_row, item = i - row * items_per_row;
        const Pack<T, N> g = load_item<T, N>(static_cast<const T *>(gate.data) + row_offset(gate, (int64_t)row), gs,
                                             (int64_t)item);
        const Pack<T, N> u = load_item<T, N>(static_cast<const T *>(up.data) + row_offset(up, (int64_t)row), us,
                                             (int64_t)item);
        Pack<T, N> o;
#pragma unroll
        for (int e = 0; e < N; ++e) {
            const float gv = q3::to_float(g.v[e]);
            const float silu = gv / (1.0f + expf(-gv));
            o.v[e] = q3::from_float<T>(silu * q3::to_float(u.v[e]));
        }
        store_item<T, N, false>(static_cast<T *>(out.data) + row_offset(out, (int64_t)row), os, (int64_t)item, o);
    }
}

template <typename T, int N>
void launch_n(const q3_tensor &out, const q3_tensor &gate, const q3_tensor &up, int64_t rows, int64_t cols,
              cudaStream_t stream) {
    const int64_t items_per_row = cols / N, total = rows * items_per_row;
    int64_t blocks = ceil_div(total, 256);
    if (blocks > ((int64_t)1 << 22)) blocks = (int64_t)1 << 22;  // grid-stride step <= 2^30
    if (total <= ((int64_t)1 << 31)) {
        swiglu_kernel<T, N, uint32_t><<<(unsigned)blocks, 256, 0, stream>>>(out, gate, up, (uint32_t)total,
                                                                           (uint32_t)items_per_row);
    } else {
        swiglu_kernel<T, N, uint64_t><<<(unsigned)blocks, 256, 0, stream>>>(out, gate, up, (uint64_t)total,
                                                                           (uint64_t)items_per_row);
    }
}

template <typename T>
void launch(const q3_tensor &out, const q3_tensor &gate, const q3_tensor &up, cudaStream_t stream) {
    const int64_t rows = q3_rows(&gate), cols = gate.shape[gate.ndim - 1];
    constexpr int V = Vec<T>::N;
    if (cols % V == 0 && rows_vectorizable(gate, V) && rows_vectorizable(up, V) && rows_vectorizable(out, V)) {
        launch_n<T, V>(out, gate, up, rows, cols, stream);
    } else {
        launch_n<T, 1>(out, gate, up, rows, cols, stream);
    }
}

}  // namespace

int q3_swiglu(q3_tensor out, q3_tensor gate, q3_tensor up, void *stream) {
    Q3_ENTER("swiglu", q3_check_swiglu_call(op, &out, &gate, &up));

    if (q3_numel(&gate) == 0) return Q3_OK;
    q3_tensor *const tensors[] = {&out, &gate, &up};
    collapse(tensors, 3, false);
    cudaStream_t s = (cudaStream_t)stream;
    Q3_DISPATCH_FLOAT(gate.dtype, T, launch<T>(out, gate, up, s));
    return q3_cuda_launch_status(op);
}
