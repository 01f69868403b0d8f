// Rotary position embedding of x [tokens, heads, head_dim], Hugging Face Qwen3 semantics:
// inv_freq[i] = 1 / theta ** (2i / head_dim) in float32 (computed on the host with the CPU's powf
// for i < 256), angle = position * inv_freq[i] formed and reduced modulo 2*pi in double, cos/sin of
// the reduced angle in float; NeoX pairs (i, i + head_dim/2), GPT-J pairs (2i, 2i + 1).
//
// Many tokens: the cos/sin of every (token, pair) is computed once into a scratch table [tokens, half]
// (rope_table), then a streaming kernel rotates x with no barrier, one item per thread and token. Few
// tokens (decode), or no memory for the table: one kernel whose blocks (group of tokens, head group) load
// their first items of x, build their tokens' table in shared memory, then rotate. An item is one 16-byte pack of each half (NeoX)
// or of interleaved pairs (GPT-J) on the fast path, one pair otherwise.
#include <math.h>

#include "entry.h"
#include "rows.cuh"

namespace {

using namespace q3r;

constexpr int HOST_TABLE = 256;
struct InvFreq {
    float v[HOST_TABLE];
};

// The rotated pair, rounded as the CPU's float expression is (no fused multiply-add).
__device__ __forceinline__ void rotate(float xa, float xb, float2 cs, float &oa, float &ob) {
    oa = __fsub_rn(__fmul_rn(xa, cs.x), __fmul_rn(xb, cs.y));
    ob = __fadd_rn(__fmul_rn(xb, cs.x), __fmul_rn(xa, cs.y));
}

// Double-precision reduction of the angle to [-pi, pi] (2*pi split in two parts), then float
// sincos: within a float ulp or two of the double cos/sin, at a fraction of FP64 sincos's cost.
__device__ __forceinline__ float2 cos_sin(double position, const InvFreq &inv, float theta, int64_t i,
                                          int64_t head_dim) {
    float inv_freq;
    if (i < HOST_TABLE) {
        inv_freq = inv.v[i];
    } else {  // glibc's powf is correctly rounded in practice; so is the double pow rounded to float
        inv_freq = 1.0f / (float)pow((double)theta, (double)((float)(2 * i) / (float)head_dim));
    }
    constexpr double TWO_PI_HI = 6.283185307179586, TWO_PI_LO = 2.4492935982947064e-16;
    constexpr double INV_TWO_PI = 0.15915494309189535;
    const double angle = position * (double)inv_freq;
    const double turns = rint(angle * INV_TWO_PI);
    const double reduced = fma(-turns, TWO_PI_LO, fma(-turns, TWO_PI_HI, angle));
    float s, c;
    sincosf((float)reduced, &s, &c);
    return make_float2(c, s);
}

// One item: a pack of each half (NeoX) or of interleaved pairs (GPT-J) when N > 1, one pair when
// N == 1. In the one-kernel path, loaded before the token's table is ready and rotated after.
template <typename T, int N, bool NEOX> struct Item {
    Pack<T, N> a, b;

    // Items of one head of head_dim elements.
    __host__ __device__ static int64_t per_head(int64_t head_dim) {
        return N == 1 ? head_dim / 2 : (NEOX ? head_dim / 2 / N : head_dim / N);
    }

    __device__ __forceinline__ void load(const T *xh, int64_t xs2, int64_t item, int64_t half) {
        if constexpr (N == 1) {
            a = load_item<T, 1>(xh, xs2, NEOX ? item : 2 * item);
            b = load_item<T, 1>(xh, xs2, NEOX ? item + half : 2 * item + 1);
        } else if constexpr (NEOX) {
            a = load_item<T, N>(xh, 1, item);
            b = load_item<T, N>(xh + half, 1, item);
        } else {
            a = load_item<T, N>(xh, 1, item);
        }
    }

    template <typename CosSin>
    __device__ __forceinline__ void rotate_store(T *oh, int64_t os2, int64_t item, int64_t half, CosSin cos_sin_of) {
        if constexpr (N == 1) {
            float oa, ob;
            rotate(q3::to_float(a.v[0]), q3::to_float(b.v[0]), cos_sin_of(item), oa, ob);
            oh[(NEOX ? item : 2 * item) * os2] = q3::from_float<T>(oa);
            oh[(NEOX ? item + half : 2 * item + 1) * os2] = q3::from_float<T>(ob);
        } else if constexpr (NEOX) {
            Pack<T, N> qa, qb;
#pragma unroll
            for (int e = 0; e < N; ++e) {
                float oa, ob;
                rotate(q3::to_float(a.v[e]), q3::to_float(b.v[e]), cos_sin_of(item * N + e), oa, ob);
                qa.v[e] = q3::from_float<T>(oa);
                qb.v[e] = q3::from_float<T>(ob);
            }
            store_item<T, N>(oh, 1, item, qa);
            store_item<T, N>(oh + half, 1, item, qb);
        } else {
            Pack<T, N> q;
#pragma unroll
            for (int e = 0; e < N; e += 2) {
                float oa, ob;
                rotate(q3::to_float(a.v[e]), q3::to_float(a.v[e + 1]), cos_sin_of((item * N + e) / 2), oa, ob);
                q.v[e] = q3::from_float<T>(oa);
                q.v[e + 1] = q3::from_float<T>(ob);
            }
            store_item<T, N>(oh, 1, item, q);
        }
    }
};

// Items a thread loads before the block's cos/sin table is built (its first PREFETCH items).
constexpr int PREFETCH = 4;

// TABLE: the cos/sin of the block's tokens in shared memory (else each pair computes its own).
template <typename T, int N, bool NEOX, bool TABLE>
__global__ void __launch_bounds__(256) rope_kernel(q3_tensor out, q3_tensor x, q3_tensor positions, InvFreq inv,
                                                   float theta, int64_t heads_per_block, int64_t tokens_per_block) {
    extern __shared__ float2 table[];  // [tokens_per_block][half] when TABLE
    const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2], half = head_dim / 2;
    const int64_t items_per_head = Item<T, N, NEOX>::per_head(head_dim);
    const int64_t h0 = (int64_t)blockIdx.y * heads_per_block;
    const int64_t h_end = h0 + heads_per_block < heads ? h0 + heads_per_block : heads;
    const int64_t work = (h_end - h0) * items_per_head;  // items of one token
    const T *xd = static_cast<const T *>(x.data);
    T *od = static_cast<T *>(out.data);
    const int64_t xs2 = x.strides[2], os2 = out.strides[2];
    // A thread's item reads PAIRS consecutive table entries; stored as [PAIRS][half / PAIRS], the
    // threads of neighbouring items read neighbouring words (no shared-memory bank conflicts).
    constexpr int PAIRS = N == 1 ? 1 : (NEOX ? N : N / 2);
    const int64_t per_pair = half / PAIRS;  // the fast paths guarantee PAIRS divides half
    auto slot = [&](int64_t i) { return PAIRS == 1 ? i : (i % PAIRS) * per_pair + i / PAIRS; };
    // Work item j of a group of tokens -> (token within the group, head, item within the head).
    auto split = [&](int64_t j, int64_t &tt, int64_t &h, int64_t &item) {
        int64_t rest;
        if (tokens_per_block * work <= (int64_t)UINT32_MAX) {
            const uint32_t jj = (uint32_t)j, w = (uint32_t)work, per = (uint32_t)items_per_head;
            tt = jj / w;
            const uint32_t r = jj - (uint32_t)tt * w;
            rest = r / per;
            item = r - (uint32_t)rest * per;
        } else {
            tt = j / work;
            rest = (j - tt * work) / items_per_head;
            item = j - tt * work - rest * items_per_head;
        }
        h = h0 + rest;
    };
    for (int64_t t0 = (int64_t)blockIdx.x * tokens_per_block; t0 < tokens; t0 += (int64_t)gridDim.x * tokens_per_block) {
        const int64_t group = t0 + tokens_per_block < tokens ? tokens_per_block : tokens - t0;
        const int64_t total = group * work;
        Item<T, N, NEOX> prefetched[PREFETCH];
#pragma unroll
        for (int k = 0; k < PREFETCH; ++k) {
            const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
            if (j < total) {
                int64_t tt, h, item;
                split(j, tt, h, item);
                prefetched[k].load(xd + (t0 + tt) * x.strides[0] + h * x.strides[1], xs2, item, half);
            }
        }
        if constexpr (TABLE) {
            __syncthreads();  // the previous group's readers are done with the table
            for (int64_t i = threadIdx.x; i < group * half; i += blockDim.x) {
                const int64_t tt = i / half, pair = i - tt * half;
                const double position = (double)q3::load_index(positions, (t0 + tt) * positions.strides[0]);
                table[tt * half + slot(pair)] = cos_sin(position, inv, theta, pair, head_dim);
            }
            __syncthreads();
        }
        for (int64_t j = threadIdx.x, k = 0; j < total; j += blockDim.x, ++k) {
            int64_t tt, h, item;
            split(j, tt, h, item);
            const int64_t t = t0 + tt;
            auto cos_sin_of = [&](int64_t i) {
                if constexpr (TABLE) {
                    return table[tt * half + slot(i)];
                } else {
                    return cos_sin((double)q3::load_index(positions, t * positions.strides[0]), inv, theta, i,
                                   head_dim);
                }
            };
            Item<T, N, NEOX> it;
            if (k < PREFETCH) {
#pragma unroll
                for (int p = 0; p < PREFETCH; ++p) {
                    if (p == k) it = prefetched[p];  // constant indices: the items stay in registers
                }
            } else {
                it.load(xd + t * x.strides[0] + h * x.strides[1], xs2, item, half);
            }
            it.rotate_store(od + t * out.strides[0] + h * out.strides[1], os2, item, half, cos_sin_of);
        }
    }
}

// table[t * half + i] = cos/sin of pair i at token t's position.
__global__ void __launch_bounds__(256) rope_table(float2 *table, q3_tensor positions, InvFreq inv, float theta,
                                                  int64_t tokens, int64_t half, int64_t head_dim) {
    const int64_t total = tokens * half;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = k / half, i = k - t * half;
        const double position = (double)q3::load_index(positions, t * positions.strides[0]);
        table[k] = cos_sin(position, inv, theta, i, head_dim);
    }
}

// One item a thread: blockIdx.x * blockDim.x + threadIdx.x over the (head, item) of a token,
// blockIdx.y over tokens.
template <typename T, int N, bool NEOX>
__global__ void __launch_bounds__(256) rope_apply(q3_tensor out, q3_tensor x, const float2 *__restrict__ table) {
    const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2], half = head_dim / 2;
    const int64_t items_per_head = Item<T, N, NEOX>::per_head(head_dim);
    // heads x items of one token fit 32 bits: out may not overlap itself, so more would need 2^39 elements
    const uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= heads * items_per_head) return;
    const int64_t h = j / (uint32_t)items_per_head, item = j - h * items_per_head;
    const T *xd = static_cast<const T *>(x.data);
    T *od = static_cast<T *>(out.data);
    for (int64_t t = blockIdx.y; t < tokens; t += gridDim.y) {
        const float2 *row = table + t * half;
        Item<T, N, NEOX> it;
        it.load(xd + t * x.strides[0] + h * x.strides[1], x.strides[2], item, half);
        it.rotate_store(od + t * out.strides[0] + h * out.strides[1], out.strides[2], item, half,
                        [&](int64_t i) { return row[i]; });
    }
}

// Enough tokens that a table of their cos/sin, built once, beats each block building its own: the
// per-block kernel must then hold its prefetched items across two barriers (126 registers, a quarter
// of the warps an SM could run, on an H200).
constexpr int64_t TABLE_TOKENS = 64;

// The scratch of the cos/sin table of `pairs` (token, pair) entries, or null when it cannot be
// allocated: the one-kernel path then serves, which needs no memory.
float2 *table_scratch(int64_t pairs, cudaStream_t stream) {
    void *scratch = nullptr;
    if (scratch_alloc(&scratch, (size_t)pairs * sizeof(float2), stream) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
    }
    return static_cast<float2 *>(scratch);
}

// Rotates x through `table` (from table_scratch), which it frees.
template <typename T, int N, bool NEOX>
int launch_table(const char *op, const q3_tensor &out, const q3_tensor &x, const q3_tensor &positions,
                 const InvFreq &inv, float theta, float2 *table, cudaStream_t stream) {
    const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2], half = head_dim / 2;
    const int64_t items_per_head = Item<T, N, NEOX>::per_head(head_dim);
    int64_t table_blocks = ceil_div(tokens * half, 256);
    if (table_blocks > ((int64_t)1 << 30)) table_blocks = (int64_t)1 << 30;
    rope_table<<<(unsigned)table_blocks, 256, 0, stream>>>(table, positions, inv, theta, tokens, half, head_dim);
    const int64_t work = heads * items_per_head;
    const int threads = work >= 256 ? 256 : (int)((work + 31) / 32 * 32);
    const dim3 grid((unsigned)ceil_div(work, threads), (unsigned)(tokens < 65535 ? tokens : 65535));
    rope_apply<T, N, NEOX><<<grid, threads, 0, stream>>>(out, x, table);
    const int status = q3_cuda_launch_status(op);
    cudaFreeAsync(table, stream);
    return status;
}

template <typename T, int N, bool NEOX>
int launch_n(const char *op, const q3_tensor &out, const q3_tensor &x, const q3_tensor &positions,
             const InvFreq &inv, float theta, cudaStream_t stream) {
    const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2], half = head_dim / 2;
    if (tokens >= TABLE_TOKENS) {
        if (float2 *table = table_scratch(tokens * half, stream)) {
            return launch_table<T, N, NEOX>(op, out, x, positions, inv, theta, table, stream);
        }
    }
    const int64_t items_per_head = Item<T, N, NEOX>::per_head(head_dim);
    // Enough blocks for the GPU when there are few tokens (decode): split the heads.
    int sms = 0;
    const int queried = sm_count(op, &sms);
    if (queried != Q3_OK) return queried;
    int64_t groups = ceil_div(4 * (int64_t)sms, tokens);
    if (groups > heads) groups = heads;
    if (groups > 65535) groups = 65535;
    if (groups < 1) groups = 1;
    const int64_t heads_per_block = ceil_div(heads, groups);
    groups = ceil_div(heads, heads_per_block);
    const int64_t work = heads_per_block * items_per_head;
    const int threads = work >= 256 ? 256 : (int)((work + 31) / 32 * 32);
    // Many tokens (here only when the table could not be allocated): a block takes a few at a time (its
    // loads all issued before the table is built), as long as every multiprocessor still gets several
    // blocks and the table stays small.
    int64_t tokens_per_block = 1;
    while (tokens_per_block < 8 && 2 * tokens_per_block * work <= (int64_t)PREFETCH * threads &&
           tokens / (2 * tokens_per_block) >= 4 * (int64_t)sms && 2 * tokens_per_block * half <= 2048) {
        tokens_per_block *= 2;
    }
    // The cos/sin table of a block's tokens in shared memory (up to the opt-in maximum; beyond it,
    // which no real head_dim reaches, each pair computes its own).
    size_t table_bytes = (size_t)(tokens_per_block * half) * sizeof(float2);
    bool use_table = true;
    if (table_bytes > 48 * 1024) {
        int device = 0, limit = 0;
        cudaGetDevice(&device);
        cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
        const bool raised = table_bytes <= (size_t)limit &&
                            cudaFuncSetAttribute(rope_kernel<T, N, NEOX, true>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 (int)table_bytes) == cudaSuccess;
        if (!raised) {
            cudaGetLastError();
            use_table = false;
            table_bytes = 0;
        }
    }
    int64_t token_blocks = ceil_div(tokens, tokens_per_block);
    if (token_blocks > ((int64_t)1 << 30)) token_blocks = (int64_t)1 << 30;
    const dim3 grid((unsigned)token_blocks, (unsigned)groups);
    if (use_table) {
        rope_kernel<T, N, NEOX, true><<<grid, threads, table_bytes, stream>>>(out, x, positions, inv, theta,
                                                                              heads_per_block, tokens_per_block);
    } else {
        rope_kernel<T, N, NEOX, false><<<grid, threads, 0, stream>>>(out, x, positions, inv, theta, heads_per_block,
                                                                     tokens_per_block);
    }
    return q3_cuda_launch_status(op);
}

template <typename T>
int launch(const char *op, const q3_tensor &out, const q3_tensor &x, const q3_tensor &positions, const InvFreq &inv,
           float theta, bool neox, cudaStream_t stream) {
    constexpr int V = Vec<T>::N;
    const int64_t head_dim = x.shape[2];
    const bool vec = (neox ? (head_dim / 2) % V == 0 : head_dim % V == 0) && rows_vectorizable(x, V) &&
                     rows_vectorizable(out, V);
    if (neox) {
        return vec ? launch_n<T, V, true>(op, out, x, positions, inv, theta, stream)
                   : launch_n<T, 1, true>(op, out, x, positions, inv, theta, stream);
    }
    return vec ? launch_n<T, V, false>(op, out, x, positions, inv, theta, stream)
               : launch_n<T, 1, false>(op, out, x, positions, inv, theta, stream);
}

}  // namespace

int q3_rope(q3_tensor out, q3_tensor x, q3_tensor positions, double theta, int layout, void *stream) {
    Q3_ENTER("rope", q3_check_rope_call(op, &out, &x, &positions, theta, layout));

    if (q3_numel(&x) == 0) return Q3_OK;
    const int64_t head_dim = x.shape[2];
    InvFreq inv;
    for (int64_t i = 0; i < HOST_TABLE; ++i) {
        inv.v[i] = i < head_dim / 2 ? 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim) : 0.0f;
    }
    cudaStream_t s = (cudaStream_t)stream;
    status = Q3_OK;
    Q3_DISPATCH_FLOAT(x.dtype, T,
                      status = launch<T>(op, out, x, positions, inv, (float)theta, layout == Q3_ROPE_NEOX, s));
    return status;
}
