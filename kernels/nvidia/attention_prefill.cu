// Causal grouped-query attention over one sequence: q [T, Hq, D], k and v [T, Hkv, D];
// query head h reads kv head h / (Hq / Hkv); token t attends to tokens 0 .. t.
//
// Fast path (f16/bf16, D in {64, 128}, unit-stride rows, 16-byte aligned pointers and row strides):
// a FlashAttention-2 style tensor-core kernel. One CTA of 4 warps per (128-query tile, head), each
// warp 32 query rows; K/V tiles of 64 keys double-buffered through swizzled shared memory with
// cp.async; S = Q K^T and O += P V with mma.sync m16n8k16 (f32 accumulate); online softmax in
// float32 registers (P rounded to the input dtype for the P @ V product, as FlashAttention does);
// tiles past the diagonal skipped; the heaviest query tiles are scheduled first. Everything else
// runs the split-KV kernels of attention_tiles.cu (as one request of T new tokens): on tensor
// cores when k and v still copy in 16-byte chunks (f16/bf16, D in {64, 128}), else on CUDA cores
// (float32, other layouts and head sizes).
#include <limits.h>

#include "attention_ptx.cuh"
#include "attention_tiles.h"
#include "entry.h"

namespace {

struct MmaParams {
    const void *q, *k, *v;
    void *out;
    int64_t q_t, q_h, k_t, k_h, v_t, v_h, o_t, o_h;  // token and head strides (elements)
    int tokens, q_heads, group, m_tiles;
    float scale_log2;
};

constexpr int kBM = 128, kBN = 64, kWarps = 4, kWM = 2;  // each warp: kWM * 16 query rows
constexpr int kMmaThreads = kWarps * 32;
static_assert(kBM == kWarps * kWM * 16, "tile rows");

template <int D> __device__ __forceinline__ int swz(int row, int chunk) {
    return row * D + ((chunk ^ (row & 7)) << 3);
}

template <int D> constexpr size_t mma_smem_bytes() { return sizeof(uint16_t) * (size_t)(kBM + 4 * kBN) * D; }

template <typename T, int D>
__global__ void __launch_bounds__(kMmaThreads, 2) prefill_mma_kernel(const MmaParams p) {
    constexpr int CH = D / 8;  // 16-byte chunks per row
    constexpr int ROW_BYTES = D * 2;
    extern __shared__ __align__(128) unsigned char prefill_smem[];
    T *qs = reinterpret_cast<T *>(prefill_smem);  // [kBM][D]
    T *ks = qs + kBM * D;                     // [2][kBN][D]
    T *vs = ks + 2 * kBN * D;                 // [2][kBN][D]

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int head = static_cast<int>(blockIdx.x % p.q_heads);
    const int m_tile = p.m_tiles - 1 - static_cast<int>(blockIdx.x / p.q_heads);  // heavy tiles first
    const int m0 = m_tile * kBM;
    const int kvh = head / p.group;
    const int tokens = p.tokens;

    const T *qg = static_cast<const T *>(p.q) + head * p.q_h;
    const T *kg = static_cast<const T *>(p.k) + kvh * p.k_h;
    const T *vg = static_cast<const T *>(p.v) + kvh * p.v_h;

    // Loader mapping: thread (chunk lc, rows lr + kRowStep * i); lr & 7 is fixed, so the swizzled
    // shared-memory offset is a per-thread constant plus whole rows.
    constexpr int kRowStep = kMmaThreads / CH;
    static_assert(kRowStep % 8 == 0, "loader rows must keep the swizzle phase");
    const int lc = tid % CH, lr = tid / CH;
    const int ld_smem = swz<D>(lr, lc);
#pragma unroll
    for (int i = 0; i < kBM / kRowStep; ++i) {
        const int t = m0 + lr + i * kRowStep;
        const bool ok = t < tokens;
        attn::cp_async16(qs + ld_smem + i * kRowStep * D, ok ? qg + t * p.q_t + lc * 8 : qg, ok);
    }
    attn::cp_async_commit();

    auto load_kv = [&](int stage, int n0) {
        T *kt = ks + stage * kBN * D + ld_smem;
        T *vt = vs + stage * kBN * D + ld_smem;
#pragma unroll
        for (int i = 0; i < kBN / kRowStep; ++i) {
            const int t = n0 + lr + i * kRowStep;
            const bool ok = t < tokens;
            attn::cp_async16(kt + i * kRowStep * D, ok ? kg + t * p.k_t + lc * 8 : kg, ok);
            attn::cp_async16(vt + i * kRowStep * D, ok ? vg + t * p.v_t + lc * 8 : vg, ok);
        }
    };

    const int kv_end = min(tokens, m0 + kBM);
    const int n_tiles = (kv_end + kBN - 1) / kBN;
    load_kv(0, 0);
    attn::cp_async_commit();

    float o[kWM][D / 8][4];
#pragma unroll
    for (int i = 0; i < kWM; ++i)
#pragma unroll
        for (int j = 0; j < D / 8; ++j) o[i][j][0] = o[i][j][1] = o[i][j][2] = o[i][j][3] = 0.0f;
    float m_run[kWM][2], l_run[kWM][2];
#pragma unroll
    for (int i = 0; i < kWM; ++i) m_run[i][0] = m_run[i][1] = -INFINITY, l_run[i][0] = l_run[i][1] = 0.0f;
    const int warp_row0 = m0 + warp * kWM * 16;  // first query row of this warp
    const int row_a = warp_row0 + (lane >> 2);   // rows of this thread: row_a + 16 i + {0, 8}
    const bool warp_live = warp_row0 < tokens;

    // ldmatrix addresses: with the swizzle, the 16-byte chunk 2x + c of a row r (r & 7 == lane & 7 for
    // every row this lane addresses) lands at chunk (2x) ^ (c ^ (lane & 7)); the byte offset inside
    // the tile is therefore lane_offset ^ (x << 5), plus whole rows added as constants.
    const uint32_t q_base = attn::smem_addr(qs);
    const uint32_t k_base = attn::smem_addr(ks), v_base = attn::smem_addr(vs);
    const uint32_t q_lane =
        (warp * kWM * 16 + (lane & 15)) * ROW_BYTES + (((lane >> 4) ^ (lane & 7)) << 4);
    const uint32_t k_lane = (((lane >> 4) << 3) + (lane & 7)) * ROW_BYTES + ((((lane >> 3) & 1) ^ (lane & 7)) << 4);
    const uint32_t v_lane = ((lane & 7) + (((lane >> 3) & 1) << 3)) * ROW_BYTES + (((lane >> 4) ^ (lane & 7)) << 4);
    const float sl2 = p.scale_log2;

    for (int j = 0; j < n_tiles; ++j) {
        if (j + 1 < n_tiles) load_kv((j + 1) & 1, (j + 1) * kBN);
        attn::cp_async_commit();
        attn::cp_async_wait<1>();
        __syncthreads();
        const int n0 = j * kBN;
        if (warp_live && n0 <= warp_row0 + kWM * 16 - 1) {
            const uint32_t k_tile = k_base + (j & 1) * (kBN * ROW_BYTES);
            const uint32_t v_tile = v_base + (j & 1) * (kBN * ROW_BYTES);
            float s[kWM][kBN / 8][4];
#pragma unroll
            for (int i = 0; i < kWM; ++i)
#pragma unroll
                for (int n = 0; n < kBN / 8; ++n) s[i][n][0] = s[i][n][1] = s[i][n][2] = s[i][n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                uint32_t a[kWM][4];
#pragma unroll
                for (int i = 0; i < kWM; ++i) attn::ldsm_x4_addr(a[i], q_base + (q_lane ^ (kk << 5)) + i * 16 * ROW_BYTES);
                const uint32_t k_addr = k_tile + (k_lane ^ (kk << 5));
#pragma unroll
                for (int np = 0; np < kBN / 16; ++np) {
                    uint32_t bk[4];
                    attn::ldsm_x4_addr(bk, k_addr + np * 16 * ROW_BYTES);
#pragma unroll
                    for (int i = 0; i < kWM; ++i) {
                        attn::mma16816<T>(s[i][2 * np], a[i], bk[0], bk[1]);
                        attn::mma16816<T>(s[i][2 * np + 1], a[i], bk[2], bk[3]);
                    }
                }
            }
            const bool need_mask = (n0 + kBN - 1 > warp_row0) || (n0 + kBN > tokens);
            if (need_mask) {
#pragma unroll
                for (int i = 0; i < kWM; ++i)
#pragma unroll
                    for (int n = 0; n < kBN / 8; ++n)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int col = n0 + n * 8 + 2 * (lane & 3) + (e & 1);
                            const int row = row_a + i * 16 + ((e >> 1) << 3);
                            if (col > row || col >= tokens) s[i][n][e] = -INFINITY;
                        }
            }
            // Online softmax (log2 domain) for the rows of this thread; a quad shares a row.
#pragma unroll
            for (int i = 0; i < kWM; ++i) {
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int n = 0; n < kBN / 8; ++n) mx = fmaxf(mx, fmaxf(s[i][n][2 * hr], s[i][n][2 * hr + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    const float m_new = fmaxf(m_run[i][hr], mx * sl2);
                    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
                    const float alpha = exp2f(m_run[i][hr] - m_use);
                    m_run[i][hr] = m_new;
                    float sum = 0.0f;
#pragma unroll
                    for (int n = 0; n < kBN / 8; ++n) {
                        s[i][n][2 * hr] = exp2f(fmaf(s[i][n][2 * hr], sl2, -m_use));
                        s[i][n][2 * hr + 1] = exp2f(fmaf(s[i][n][2 * hr + 1], sl2, -m_use));
                        sum += s[i][n][2 * hr] + s[i][n][2 * hr + 1];
                    }
                    l_run[i][hr] = l_run[i][hr] * alpha + sum;  // per-thread partial; quad-summed at the end
#pragma unroll
                    for (int d = 0; d < D / 8; ++d) {
                        o[i][d][2 * hr] *= alpha;
                        o[i][d][2 * hr + 1] *= alpha;
                    }
                }
            }
            // O += P V.
#pragma unroll
            for (int kk = 0; kk < kBN / 16; ++kk) {
                uint32_t a[kWM][4];
#pragma unroll
                for (int i = 0; i < kWM; ++i) {
                    a[i][0] = attn::pack2<T>(s[i][2 * kk][0], s[i][2 * kk][1]);
                    a[i][1] = attn::pack2<T>(s[i][2 * kk][2], s[i][2 * kk][3]);
                    a[i][2] = attn::pack2<T>(s[i][2 * kk + 1][0], s[i][2 * kk + 1][1]);
                    a[i][3] = attn::pack2<T>(s[i][2 * kk + 1][2], s[i][2 * kk + 1][3]);
                }
                const uint32_t v_rows = v_tile + kk * 16 * ROW_BYTES;
#pragma unroll
                for (int dp = 0; dp < D / 16; ++dp) {
                    uint32_t bv[4];
                    attn::ldsm_x4_trans_addr(bv, v_rows + (v_lane ^ (dp << 5)));
#pragma unroll
                    for (int i = 0; i < kWM; ++i) {
                        attn::mma16816<T>(o[i][2 * dp], a[i], bv[0], bv[1]);
                        attn::mma16816<T>(o[i][2 * dp + 1], a[i], bv[2], bv[3]);
                    }
                }
            }
        }
        __syncthreads();
    }

    // Normalise, stage this warp's rows in its own (no longer read) Q rows, store 16 bytes at a time.
#pragma unroll
    for (int i = 0; i < kWM; ++i) {
        float inv[2];
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            float l = l_run[i][hr];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            inv[hr] = l > 0.0f ? 1.0f / l : 0.0f;
        }
        const int srow = warp * kWM * 16 + i * 16 + (lane >> 2);
#pragma unroll
        for (int d = 0; d < D / 8; ++d) {
            *reinterpret_cast<uint32_t *>(qs + swz<D>(srow, d) + 2 * (lane & 3)) =
                attn::pack2<T>(o[i][d][0] * inv[0], o[i][d][1] * inv[0]);
            *reinterpret_cast<uint32_t *>(qs + swz<D>(srow + 8, d) + 2 * (lane & 3)) =
                attn::pack2<T>(o[i][d][2] * inv[1], o[i][d][3] * inv[1]);
        }
    }
    __syncwarp();
    T *og = static_cast<T *>(p.out) + head * p.o_h;
    for (int i = lane; i < kWM * 16 * CH; i += 32) {
        const int r = i / CH, c = i % CH, t = warp_row0 + r;
        if (t < tokens) {
            *reinterpret_cast<uint4 *>(og + t * p.o_t + c * 8) =
                *reinterpret_cast<const uint4 *>(qs + swz<D>(warp * kWM * 16 + r, c));
        }
    }
}

template <typename T, int D> int launch_mma(const char *op, const MmaParams &p, cudaStream_t stream) {
    auto kernel = prefill_mma_kernel<T, D>;
    const size_t smem = mma_smem_bytes<D>();
    const int status = q3_cuda_reserve_shared_memory(op, reinterpret_cast<const void *>(kernel), smem);
    if (status != Q3_OK) return status;
    const int64_t ctas = static_cast<int64_t>(p.m_tiles) * p.q_heads;
    kernel<<<(unsigned)ctas, kMmaThreads, smem, stream>>>(p);
    return Q3_OK;
}

// Unit-stride rows, 16-byte aligned data and token/head strides.
bool mma_layout(const q3_tensor &t) {
    if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) return false;
    if (t.strides[2] != 1) return false;
    return t.strides[0] % 8 == 0 && t.strides[1] % 8 == 0;
}

}  // namespace

int q3_attention_prefill(q3_tensor out, q3_tensor q, q3_tensor k, q3_tensor v, double scale, void *stream) {
    Q3_ENTER("attention_prefill", q3_check_attention_prefill_call(op, &out, &q, &k, &v, scale));
    const int64_t tokens = q.shape[0], q_heads = q.shape[1], head_dim = q.shape[2];
    const int64_t kv_heads = k.shape[1];
    if (q3_numel(&out) == 0) return Q3_OK;

    cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
    const int64_t group = q_heads / kv_heads;
    const float scale_log2 = static_cast<float>(scale) * attn::kLog2e;

    const int64_t m_tiles = (tokens + kBM - 1) / kBM;
    const bool fast = q.dtype != Q3_F32 && (head_dim == 64 || head_dim == 128) && tokens <= INT_MAX / 2 &&
                      m_tiles * q_heads <= INT_MAX && mma_layout(q) && mma_layout(k) && mma_layout(v) &&
                      mma_layout(out);
    if (fast) {
        MmaParams p;
        p.q = q.data; p.k = k.data; p.v = v.data; p.out = out.data;
        p.q_t = q.strides[0]; p.q_h = q.strides[1];
        p.k_t = k.strides[0]; p.k_h = k.strides[1];
        p.v_t = v.strides[0]; p.v_h = v.strides[1];
        p.o_t = out.strides[0]; p.o_h = out.strides[1];
        p.tokens = static_cast<int>(tokens);
        p.q_heads = static_cast<int>(q_heads);
        p.group = static_cast<int>(group);
        p.m_tiles = static_cast<int>(m_tiles);
        p.scale_log2 = scale_log2;
        if (q.dtype == Q3_BF16) {
            status = head_dim == 128 ? launch_mma<__nv_bfloat16, 128>(op, p, cuda_stream)
                                     : launch_mma<__nv_bfloat16, 64>(op, p, cuda_stream);
        } else {
            status = head_dim == 128 ? launch_mma<__half, 128>(op, p, cuda_stream)
                                     : launch_mma<__half, 64>(op, p, cuda_stream);
        }
        if (status != Q3_OK) return status;
        return q3_cuda_launch_status(op);
    }

    if (q_heads > INT_MAX || head_dim > INT_MAX / 4) {
        return q3_fail(Q3_UNSUPPORTED, op, "too many heads or too wide a head for the CUDA attention kernel");
    }
    // One request of T new tokens at positions 0 .. T-1 against a cache of T positions.
    attn::SplitParams p = {};
    p.q = q.data; p.q_b = 0; p.q_s = q.strides[0]; p.q_h = q.strides[1]; p.q_d = q.strides[2];
    p.k = k.data; p.k_b = 0; p.k_p = k.strides[0]; p.k_h = k.strides[1]; p.k_d = k.strides[2];
    p.v = v.data; p.v_b = 0; p.v_p = v.strides[0]; p.v_h = v.strides[1]; p.v_d = v.strides[2];
    p.out = out.data; p.o_b = 0; p.o_s = out.strides[0]; p.o_h = out.strides[1]; p.o_d = out.strides[2];
    p.table = nullptr;
    p.lens = nullptr;
    p.lens_const = tokens;
    p.new_tokens = tokens;
    p.batch = 1;
    p.kv_heads = static_cast<int>(kv_heads);
    p.group = static_cast<int>(group);
    p.head_dim = static_cast<int>(head_dim);
    p.scale_log2 = scale_log2;
    p.scale = static_cast<float>(scale);
    const int size = attn::elem_size(q.dtype);
    const bool vec = attn::vector_layout(k, size) && attn::vector_layout(v, size);
    status = attn::launch_split_dtype(op, q.dtype, p, vec, tokens, cuda_stream);
    if (status != Q3_OK) return status;
    return q3_cuda_launch_status(op);
}
