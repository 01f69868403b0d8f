// Shared by attention_prefill.cu and attention_decode.cu: PTX helpers (cp.async, ldmatrix, mma)
// and the split-KV (flash-decoding) attention kernels, with their combine kernel.
//
// A split-KV CTA computes, for request b and kv head kvh, the query rows r = s * G + g (new token
// s, query head kvh * G + g) of one row chunk against the keys of one split:
// [split * chunk_keys, min(pos_last + 1, (split + 1) * chunk_keys)), where new token s sits at
// position len - S + s and sees positions <= that one. Keys at or past len are never read (nor
// are block-table entries past the last used block), and every K/V row is loaded once for the
// whole GQA group. Two kernels:
//  - decode_mma_kernel (f16/bf16, D in {64, 128}, k/v rows copyable in 16-byte chunks): 16 query
//    rows as the M of mma.sync m16n8k16, 4 warps taking interleaved 16-key tiles through their
//    own 3-stage cp.async pipelines, online softmax in registers, warps merged in shared memory;
//  - split_kernel (everything else, float32 included): CUDA cores, K/V tiles in shared memory
//    (cp.async when rows are 16-byte copyable, element loads otherwise).
// Scores and softmax are float32 (the tensor-core kernel in the log2 domain with scale * log2(e)
// folded in; the CUDA-core kernel as the CPU reference: dot * scale, expf), P @ V accumulates in
// float32 (the tensor-core kernel rounds P to the input dtype for the product). With one split a
// kernel writes out directly; with several it writes unnormalised partials (o, m, l) to a
// stream-ordered temporary that the combine kernel merges by log-sum-exp.
#pragma once

#include <limits.h>

#include <mutex>

#include "common.cuh"

namespace {
namespace attn {

// ---------------------------------------------------------------------------------------------
// PTX helpers (sm_80+).

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; when !valid nothing is read and the 16 bytes are zero-filled.
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
                 "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm_x4_addr(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans_addr(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// D (16x8, f32) += A (16x16, row) * B (16x8, col) for 16-bit inputs.
template <typename T> __device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                               uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4],
                                                                    uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest into one 32-bit register (lo in the low half).
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

// ---------------------------------------------------------------------------------------------
// Vector loads from shared memory, widened to float.

// 16 bytes (16 / sizeof(T) elements) at a 16-byte aligned address.
__device__ __forceinline__ void load16(const float *p, float *f) {
    const float4 v = *reinterpret_cast<const float4 *>(p);
    f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
}
__device__ __forceinline__ void load16(const __nv_bfloat16 *p, float *f) {
    const uint4 v = *reinterpret_cast<const uint4 *>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w[i]));
        f[2 * i] = x.x; f[2 * i + 1] = x.y;
    }
}
__device__ __forceinline__ void load16(const __half *p, float *f) {
    const uint4 v = *reinterpret_cast<const uint4 *>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 x = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
        f[2 * i] = x.x; f[2 * i + 1] = x.y;
    }
}

// 4 elements at an address aligned to 4 * sizeof(T).
__device__ __forceinline__ float4 load4(const float *p) { return *reinterpret_cast<const float4 *>(p); }
__device__ __forceinline__ float4 load4(const __nv_bfloat16 *p) {
    const uint2 v = *reinterpret_cast<const uint2 *>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&v.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&v.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 load4(const __half *p) {
    const uint2 v = *reinterpret_cast<const uint2 *>(p);
    const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&v.x));
    const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&v.y));
    return make_float4(a.x, a.y, b.x, b.y);
}

// ---------------------------------------------------------------------------------------------
// The split-KV kernel.

constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

struct SplitParams {
    const void *q;  // [B, S, Hq, D]
    int64_t q_b, q_s, q_h, q_d;
    const void *k;  // contiguous: [B, L, Hkv, D]; paged: [blocks, block_size, Hkv, D]
    int64_t k_b, k_p, k_h, k_d;
    const void *v;
    int64_t v_b, v_p, v_h, v_d;
    void *out;  // [B, S, Hq, D]
    int64_t o_b, o_s, o_h, o_d;
    const void *table;  // block table [B, max_blocks], or NULL for a contiguous cache
    int table_i64;
    int64_t t_b, t_i, block_size;
    const void *lens;  // seq_lens [B], or NULL: every request holds lens_const tokens
    int lens_i64;
    int64_t lens_stride, lens_const;
    int64_t new_tokens;  // S
    int64_t row_chunks;  // ceil(S * G / rows per CTA)
    int64_t chunk_keys;  // keys of one split (a multiple of the key tile)
    int batch, kv_heads, group, head_dim, dr;  // dr: head_dim rounded up to the 16-byte vector
    int splits;
    float scale_log2;  // scale * log2(e) (tensor-core kernel)
    float scale;       // (CUDA-core kernel: natural-log domain, as the CPU reference)
    int natural;       // partials' m in the natural-log domain (else log2)
    float *part;       // splits > 1: [B * S * Hq][splits][head_dim + 2] (o..., m, l)
};

template <typename T> struct TileShape {
    static constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // elements in 16 bytes
    static constexpr int kKeys = sizeof(T) == 4 ? 32 : 64;          // keys per tile
};

__device__ __forceinline__ int64_t seq_len(const SplitParams &p, int64_t b) {
    if (p.lens == nullptr) return p.lens_const;
    return p.lens_i64 ? static_cast<const int64_t *>(p.lens)[b * p.lens_stride]
                      : static_cast<const int32_t *>(p.lens)[b * p.lens_stride];
}

// Element offsets of (request b, position pos, kv head kvh) in k and v.
__device__ __forceinline__ void kv_offsets(const SplitParams &p, int64_t b, int64_t pos, int kvh, int64_t &k_off,
                                           int64_t &v_off) {
    if (p.table == nullptr) {
        k_off = b * p.k_b + pos * p.k_p + kvh * p.k_h;
        v_off = b * p.v_b + pos * p.v_p + kvh * p.v_h;
        return;
    }
    const int64_t entry = b * p.t_b + (pos / p.block_size) * p.t_i;
    const int64_t block = p.table_i64 ? static_cast<const int64_t *>(p.table)[entry]
                                      : static_cast<const int32_t *>(p.table)[entry];
    const int64_t within = pos % p.block_size;
    k_off = block * p.k_b + within * p.k_p + kvh * p.k_h;
    v_off = block * p.v_b + within * p.v_p + kvh * p.v_h;
}

// Shared memory of one CTA, in bytes.
template <typename T> inline size_t split_smem_bytes(int rows_per_cta, int dr) {
    constexpr int VEC = TileShape<T>::kVec, KT = TileShape<T>::kKeys;
    return sizeof(T) * (size_t)(2 * 2 * KT * (dr + VEC)) +
           sizeof(float) * (size_t)(2 * rows_per_cta * dr + rows_per_cta * KT + 3 * rows_per_cta);
}

// VEC: k and v have unit-stride rows, 16-byte aligned (cp.async); else element loads.
// RB: query rows per thread in the score phase; a CTA holds RB * (kThreads / KT) rows.
template <typename T, bool VEC, int RB>
__global__ void __launch_bounds__(kThreads) split_kernel(const SplitParams p) {
    constexpr int VECN = TileShape<T>::kVec, KT = TileShape<T>::kKeys;
    constexpr int NG = kThreads / KT;  // row groups of the score phase
    constexpr int RPC = RB * NG;       // rows per CTA
    extern __shared__ __align__(16) unsigned char split_smem[];
    const int dr = p.dr, D = p.head_dim;
    const int ks = dr + VECN;  // row stride of the K/V tiles, padded by 16 bytes (no bank conflicts)
    T *k_tiles = reinterpret_cast<T *>(split_smem);  // [2][KT][ks]
    T *v_tiles = k_tiles + 2 * KT * ks;             // [2][KT][ks]
    float *qs = reinterpret_cast<float *>(v_tiles + 2 * KT * ks);  // [RPC][dr]
    float *os = qs + RPC * dr;                                      // [RPC][dr]
    float *ss = os + RPC * dr;                                      // [RPC][KT]
    float *m_s = ss + RPC * KT, *l_s = m_s + RPC, *a_s = l_s + RPC;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int64_t idx = blockIdx.x;
    const int split = static_cast<int>(idx % p.splits);
    idx /= p.splits;
    const int kvh = static_cast<int>(idx % p.kv_heads);
    idx /= p.kv_heads;
    const int64_t b = idx % p.batch;
    const int64_t chunk = p.row_chunks - 1 - idx / p.batch;  // latest (heaviest) rows first

    const int64_t len = seq_len(p, b);
    const int64_t S = p.new_tokens, G = p.group;
    const int64_t r0 = chunk * RPC;
    const int nrows = static_cast<int>(min(static_cast<int64_t>(RPC), S * G - r0));
    const int64_t first_pos = len - S;  // position of new token 0
    const int64_t pos_last = first_pos + (r0 + nrows - 1) / G;
    const int64_t kbeg = static_cast<int64_t>(split) * p.chunk_keys;
    const int64_t kend = min(pos_last + 1, kbeg + p.chunk_keys);
    if (kbeg >= kend) return;  // uniform over the CTA: nothing of this split is visible

    const T *kg = static_cast<const T *>(p.k);
    const T *vg = static_cast<const T *>(p.v);

    auto load_tile = [&](int stage, int64_t kbase) {
        T *kt = k_tiles + stage * KT * ks;
        T *vt = v_tiles + stage * KT * ks;
        if constexpr (VEC) {
            const int cpr = dr / VECN;  // 16-byte chunks per row (dr == D here)
            for (int i = tid; i < KT * cpr; i += kThreads) {
                const int row = i / cpr, c = i - row * cpr;
                const int64_t pos = kbase + row;
                const bool valid = pos < kend;
                int64_t k_off = 0, v_off = 0;
                if (valid) kv_offsets(p, b, pos, kvh, k_off, v_off);
                cp_async16(kt + row * ks + c * VECN, kg + k_off + c * VECN, valid);
                cp_async16(vt + row * ks + c * VECN, vg + v_off + c * VECN, valid);
            }
        } else {
            for (int i = tid; i < KT * dr; i += kThreads) {
                const int row = i / dr, d = i - row * dr;
                const int64_t pos = kbase + row;
                T kv = q3::from_float<T>(0.0f), vv = q3::from_float<T>(0.0f);
                if (pos < kend && d < D) {
                    int64_t k_off, v_off;
                    kv_offsets(p, b, pos, kvh, k_off, v_off);
                    kv = kg[k_off + d * p.k_d];
                    vv = vg[v_off + d * p.v_d];
                }
                kt[row * ks + d] = kv;
                vt[row * ks + d] = vv;
            }
        }
    };

    load_tile(0, kbeg);
    cp_async_commit();

    // Query rows (scaled into the log2 domain), accumulators, running max and sum.
    const T *qg = static_cast<const T *>(p.q);
    for (int i = tid; i < RPC * dr; i += kThreads) {
        const int r = i / dr, d = i - r * dr;
        float value = 0.0f;
        if (r < nrows && d < D) {
            const int64_t row = r0 + r, s = row / G, h = kvh * G + (row - s * G);
            value = q3::to_float(qg[b * p.q_b + s * p.q_s + h * p.q_h + d * p.q_d]);
        }
        qs[i] = value;
        os[i] = 0.0f;
    }
    for (int r = tid; r < RPC; r += kThreads) {
        m_s[r] = -INFINITY;
        l_s[r] = 0.0f;
        a_s[r] = 1.0f;
    }

    const int64_t tiles = (kend - kbeg + KT - 1) / KT;
    for (int64_t t = 0; t < tiles; ++t) {
        if (t + 1 < tiles) load_tile(static_cast<int>((t + 1) & 1), kbeg + (t + 1) * KT);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const T *kt = k_tiles + (t & 1) * KT * ks;
        const T *vt = v_tiles + (t & 1) * KT * ks;
        const int64_t kbase = kbeg + t * KT;

        // Scores: thread (key c, rows rg + i * NG). Four float32 accumulators per row, one per lane of
        // a float4, summed pairwise at the end: chains of head_dim / 4 roundings instead of head_dim
        // (at scores of 30-100 one 128-long chain made the f32 output twice as far from the reference
        // as a blocked product).
        {
            const int c = tid % KT, rg = tid / KT;
            float acc[RB][4];
#pragma unroll
            for (int i = 0; i < RB; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
            const T *krow = kt + c * ks;
            for (int d = 0; d < dr; d += VECN) {
                float kf[VECN];
                load16(krow + d, kf);
#pragma unroll
                for (int i = 0; i < RB; ++i) {
                    const int r = rg + i * NG;
                    if (r < nrows) {
                        const float *qr = qs + r * dr + d;
#pragma unroll
                        for (int e = 0; e < VECN; e += 4) {
                            const float4 qv = *reinterpret_cast<const float4 *>(qr + e);
                            acc[i][0] = fmaf(qv.x, kf[e], acc[i][0]);
                            acc[i][1] = fmaf(qv.y, kf[e + 1], acc[i][1]);
                            acc[i][2] = fmaf(qv.z, kf[e + 2], acc[i][2]);
                            acc[i][3] = fmaf(qv.w, kf[e + 3], acc[i][3]);
                        }
                    }
                }
            }
            const int64_t key = kbase + c;
#pragma unroll
            for (int i = 0; i < RB; ++i) {
                const int r = rg + i * NG;
                if (r < nrows) {
                    const int64_t pos = first_pos + (r0 + r) / G;
                    const float dot = (acc[i][0] + acc[i][1]) + (acc[i][2] + acc[i][3]);
                    ss[r * KT + c] = (key <= pos && key < kend) ? dot * p.scale : -INFINITY;
                }
            }
        }
        __syncthreads();

        // Online softmax: one warp per row.
        for (int r = warp; r < nrows; r += kThreads / 32) {
            float sv[KT / 32];
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < KT / 32; ++j) {
                sv[j] = ss[r * KT + lane + 32 * j];
                mx = fmaxf(mx, sv[j]);
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_old = m_s[r];
            const float m_new = fmaxf(m_old, mx);
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < KT / 32; ++j) {
                const float e = expf(sv[j] - m_use);
                ss[r * KT + lane + 32 * j] = e;
                sum += e;
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            if (lane == 0) {
                const float alpha = expf(m_old - m_use);
                a_s[r] = alpha;
                l_s[r] = l_s[r] * alpha + sum;
                m_s[r] = m_new;
            }
        }
        __syncthreads();

        // O = O * alpha + P @ V: thread (row, 4 consecutive dims).
        const int nq = dr / 4;
        for (int i = tid; i < nrows * nq; i += kThreads) {
            const int r = i / nq, d = (i - r * nq) * 4;
            const float alpha = a_s[r];
            float4 o = *reinterpret_cast<float4 *>(os + r * dr + d);
            o.x *= alpha; o.y *= alpha; o.z *= alpha; o.w *= alpha;
            const float *pr = ss + r * KT;
            const T *vc = vt + d;
#pragma unroll 8
            for (int c = 0; c < KT; ++c) {
                const float w = pr[c];
                const float4 x = load4(vc + c * ks);
                o.x = fmaf(w, x.x, o.x);
                o.y = fmaf(w, x.y, o.y);
                o.z = fmaf(w, x.z, o.z);
                o.w = fmaf(w, x.w, o.w);
            }
            *reinterpret_cast<float4 *>(os + r * dr + d) = o;
        }
        __syncthreads();
    }

    if (p.splits == 1) {
        T *out = static_cast<T *>(p.out);
        for (int i = tid; i < nrows * D; i += kThreads) {
            const int r = i / D, d = i - r * D;
            const int64_t row = r0 + r, s = row / G, h = kvh * G + (row - s * G);
            out[b * p.o_b + s * p.o_s + h * p.o_h + d * p.o_d] = q3::from_float<T>(os[r * dr + d] / l_s[r]);
        }
    } else {
        const int64_t q_heads = G * p.kv_heads;
        const int width = D + 2;
        for (int i = tid; i < nrows * width; i += kThreads) {
            const int r = i / width, d = i - r * width;
            const int64_t row = r0 + r, s = row / G, h = kvh * G + (row - s * G);
            const int64_t out_row = (b * S + s) * q_heads + h;
            const float value = d < D ? os[r * dr + d] : (d == D ? m_s[r] : l_s[r]);
            p.part[(out_row * p.splits + split) * width + d] = value;
        }
    }
}

// One CTA per output row (b, s, h): merges the splits that hold any key the row sees.
template <typename T> __global__ void __launch_bounds__(kThreads) combine_kernel(const SplitParams p) {
    const int64_t q_heads = static_cast<int64_t>(p.group) * p.kv_heads;
    const int64_t row = blockIdx.x;
    const int64_t h = row % q_heads, bs = row / q_heads;
    const int64_t s = bs % p.new_tokens, b = bs / p.new_tokens;
    const int64_t pos = seq_len(p, b) - p.new_tokens + s;
    const int used = static_cast<int>(min(static_cast<int64_t>(p.splits), pos / p.chunk_keys + 1));
    const int D = p.head_dim, width = D + 2;
    const float *base = p.part + row * p.splits * width;
    float m = -INFINITY;
    for (int i = 0; i < used; ++i) m = fmaxf(m, base[i * width + D]);
    float l = 0.0f;
    auto weight = [&](int i) {
        return p.natural ? expf(base[i * width + D] - m) : exp2f(base[i * width + D] - m);
    };
    for (int i = 0; i < used; ++i) l += base[i * width + D + 1] * weight(i);
    const float inv = 1.0f / l;
    T *out = static_cast<T *>(p.out) + b * p.o_b + s * p.o_s + h * p.o_h;
    for (int d = threadIdx.x; d < D; d += kThreads) {
        float acc = 0.0f;
        for (int i = 0; i < used; ++i) acc += base[i * width + d] * weight(i);
        out[d * p.o_d] = q3::from_float<T>(acc * inv);
    }
}

// ---------------------------------------------------------------------------------------------
// The split-KV kernel on tensor cores (f16/bf16, D in {64, 128}, 16-byte copyable k/v rows).
// A CTA holds 16 query rows (the M of m16n8k16: the GQA group, times the new tokens) and 4 warps;
// the warps take interleaved 16-key tiles of the CTA's key range, each through its own
// kMmaStages-deep cp.async pipeline, keep their own online softmax, and merge at the end.

constexpr int kMmaRows = 16, kMmaKeys = 16, kMmaWarps = 4, kMmaStages = 3;

template <int D> constexpr size_t decode_mma_smem_bytes() {
    return 2 * (size_t)(kMmaRows * D + kMmaWarps * kMmaStages * 2 * kMmaKeys * D);
}

template <typename T, int D>
__global__ void __launch_bounds__(kMmaWarps * 32, 2) decode_mma_kernel(const SplitParams p) {
    constexpr int CH = D / 8, ROW_BYTES = D * 2;
    constexpr int TILE = kMmaKeys * D;  // elements of one K (or V) tile
    static_assert(kMmaWarps * kMmaStages * 2 * TILE * 2 >= kMmaWarps * kMmaRows * (D + 2) * 4,
                  "the merge scratch must fit in the tile buffers");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    T *qs = reinterpret_cast<T *>(decode_smem);  // [16][D], swizzled
    T *tiles = qs + kMmaRows * D;              // [warp][stage][K, V][16][D], swizzled
    auto swz = [](int row, int chunk) { return row * D + ((chunk ^ (row & 7)) << 3); };

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int64_t idx = blockIdx.x;
    const int split = static_cast<int>(idx % p.splits);
    idx /= p.splits;
    const int kvh = static_cast<int>(idx % p.kv_heads);
    idx /= p.kv_heads;
    const int64_t b = idx % p.batch;
    const int64_t chunk = p.row_chunks - 1 - idx / p.batch;

    const int64_t len = seq_len(p, b);
    const int64_t S = p.new_tokens, G = p.group;
    const int64_t r0 = chunk * kMmaRows;
    const int nrows = static_cast<int>(min(static_cast<int64_t>(kMmaRows), S * G - r0));
    const int64_t first_pos = len - S;
    const int64_t pos_last = first_pos + (r0 + nrows - 1) / G;
    const int64_t kbeg = static_cast<int64_t>(split) * p.chunk_keys;
    const int64_t kend = min(pos_last + 1, kbeg + p.chunk_keys);
    if (kbeg >= kend) return;

    // Positions of this thread's two rows (lane / 4 and lane / 4 + 8).
    int64_t row_pos[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
        const int r = (lane >> 2) + hr * 8;
        row_pos[hr] = r < nrows ? first_pos + (r0 + r) / G : pos_last;
    }

    const T *kg = static_cast<const T *>(p.k);
    const T *vg = static_cast<const T *>(p.v);
    T *wtiles = tiles + warp * kMmaStages * 2 * TILE;
    const int64_t n_tiles = (kend - kbeg + kMmaKeys - 1) / kMmaKeys;
    const int64_t my_tiles = n_tiles > warp ? (n_tiles - warp + kMmaWarps - 1) / kMmaWarps : 0;

    // Loader: lane (chunk lane % CH, rows lane / CH + (32 / CH) * i).
    constexpr int kRowStep = 32 / CH;
    const int lc = lane % CH, lr = lane / CH;
    // Paged with block_size % 16 == 0: a tile (16-aligned keys) lies in one block, whose table
    // entry is read one tile ahead so that the copies never wait on it.
    const bool uniform = p.table != nullptr && p.block_size % kMmaKeys == 0;
    auto table_entry = [&](int64_t it) -> int64_t {
        const int64_t kb = kbeg + (warp + it * kMmaWarps) * kMmaKeys;
        const int64_t entry = b * p.t_b + (kb / p.block_size) * p.t_i;
        return p.table_i64 ? static_cast<const int64_t *>(p.table)[entry]
                           : static_cast<const int32_t *>(p.table)[entry];
    };
    auto load = [&](int stage, int64_t it, int64_t tile_block) {
        const int64_t kb = kbeg + (warp + it * kMmaWarps) * kMmaKeys;
        T *kt = wtiles + stage * 2 * TILE;
        T *vt = kt + TILE;
        int64_t blk0 = 0, off0 = 0;  // paged: block and offset of the tile's first key
        if (p.table != nullptr) {
            blk0 = kb / p.block_size;
            off0 = kb - blk0 * p.block_size;
        }
#pragma unroll
        for (int i = 0; i < kMmaKeys / kRowStep; ++i) {
            const int r = lr + i * kRowStep;
            const int64_t pos = kb + r;
            const bool valid = pos < kend;
            int64_t k_off = 0, v_off = 0;
            if (valid) {
                if (p.table == nullptr) {
                    k_off = b * p.k_b + pos * p.k_p + kvh * p.k_h;
                    v_off = b * p.v_b + pos * p.v_p + kvh * p.v_h;
                } else if (uniform) {
                    const int64_t within = off0 + r;
                    k_off = tile_block * p.k_b + within * p.k_p + kvh * p.k_h;
                    v_off = tile_block * p.v_b + within * p.v_p + kvh * p.v_h;
                } else {
                    int64_t blk = blk0, within = off0 + r;
                    while (within >= p.block_size) {
                        within -= p.block_size;
                        ++blk;
                    }
                    const int64_t entry = b * p.t_b + blk * p.t_i;
                    const int64_t block = p.table_i64 ? static_cast<const int64_t *>(p.table)[entry]
                                                      : static_cast<const int32_t *>(p.table)[entry];
                    k_off = block * p.k_b + within * p.k_p + kvh * p.k_h;
                    v_off = block * p.v_b + within * p.v_p + kvh * p.v_h;
                }
            }
            cp_async16(kt + swz(r, lc), kg + k_off + lc * 8, valid);
            cp_async16(vt + swz(r, lc), vg + v_off + lc * 8, valid);
        }
    };

    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
    const float sl2 = p.scale_log2;
    const uint32_t k_lane = (((lane >> 4) << 3) + (lane & 7)) * ROW_BYTES + ((((lane >> 3) & 1) ^ (lane & 7)) << 4);
    const uint32_t v_lane = ((lane & 7) + (((lane >> 3) & 1) << 3)) * ROW_BYTES + (((lane >> 4) ^ (lane & 7)) << 4);
    const uint32_t w_base = smem_addr(wtiles);

#pragma unroll
    for (int st = 0; st < kMmaStages - 1; ++st) {
        if (st < my_tiles) load(st, st, uniform ? table_entry(st) : 0);
        cp_async_commit();
    }
    int64_t next_block = uniform && kMmaStages - 1 < my_tiles ? table_entry(kMmaStages - 1) : 0;
    // Query rows (rows past nrows are zero).
    const T *qg = static_cast<const T *>(p.q);
    for (int r = warp; r < kMmaRows; r += kMmaWarps) {
        const T *qrow = nullptr;
        if (r < nrows) {
            const int64_t row = r0 + r, s = row / G, h = kvh * G + (row - s * G);
            qrow = qg + b * p.q_b + s * p.q_s + h * p.q_h;
        }
        for (int d = lane; d < D; d += 32) {
            qs[swz(r, d >> 3) + (d & 7)] = qrow != nullptr ? qrow[d * p.q_d] : q3::from_float<T>(0.0f);
        }
    }
    __syncthreads();
    uint32_t qa[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        ldsm_x4_addr(qa[kk], smem_addr(qs) + (((lane & 15) * ROW_BYTES + (((lane >> 4) ^ (lane & 7)) << 4)) ^ (kk << 5)));
    }

    for (int64_t it = 0; it < my_tiles; ++it) {
        const int64_t next = it + kMmaStages - 1;
        if (next < my_tiles) load(static_cast<int>(next % kMmaStages), next, next_block);
        cp_async_commit();
        if (uniform && next + 1 < my_tiles) next_block = table_entry(next + 1);
        cp_async_wait<kMmaStages - 1>();
        __syncwarp();
        const int stage = static_cast<int>(it % kMmaStages);
        const uint32_t k_tile = w_base + stage * 2 * TILE * 2;
        const uint32_t v_tile = k_tile + TILE * 2;
        const int64_t kb = kbeg + (warp + it * kMmaWarps) * kMmaKeys;

        float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            uint32_t bk[4];
            ldsm_x4_addr(bk, k_tile + (k_lane ^ (kk << 5)));
            mma16816<T>(s[0], qa[kk], bk[0], bk[1]);
            mma16816<T>(s[1], qa[kk], bk[2], bk[3]);
        }
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int64_t key = kb + n * 8 + 2 * (lane & 3) + (e & 1);
                if (key > row_pos[e >> 1] || key >= kend) s[n][e] = -INFINITY;
            }
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            float mx = fmaxf(fmaxf(s[0][2 * hr], s[0][2 * hr + 1]), fmaxf(s[1][2 * hr], s[1][2 * hr + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m_run[hr], mx * sl2);
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float alpha = exp2f(m_run[hr] - m_use);
            m_run[hr] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                s[n][2 * hr] = exp2f(fmaf(s[n][2 * hr], sl2, -m_use));
                s[n][2 * hr + 1] = exp2f(fmaf(s[n][2 * hr + 1], sl2, -m_use));
                sum += s[n][2 * hr] + s[n][2 * hr + 1];
            }
            l_run[hr] = l_run[hr] * alpha + sum;
#pragma unroll
            for (int d = 0; d < D / 8; ++d) {
                o[d][2 * hr] *= alpha;
                o[d][2 * hr + 1] *= alpha;
            }
        }
        uint32_t a[4];
        a[0] = pack2<T>(s[0][0], s[0][1]);
        a[1] = pack2<T>(s[0][2], s[0][3]);
        a[2] = pack2<T>(s[1][0], s[1][1]);
        a[3] = pack2<T>(s[1][2], s[1][3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t bv[4];
            ldsm_x4_trans_addr(bv, v_tile + (v_lane ^ (dp << 5)));
            mma16816<T>(o[2 * dp], a, bv[0], bv[1]);
            mma16816<T>(o[2 * dp + 1], a, bv[2], bv[3]);
        }
        __syncwarp();
    }
    cp_async_wait<0>();

    // Merge the warps: scratch [warp][16][D + 2] floats (o..., m, l) over the tile buffers.
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
        l_run[hr] += __shfl_xor_sync(0xffffffffu, l_run[hr], 1);
        l_run[hr] += __shfl_xor_sync(0xffffffffu, l_run[hr], 2);
    }
    __syncthreads();
    float *scratch = reinterpret_cast<float *>(tiles);
    constexpr int W = D + 2;
    float *mine = scratch + warp * kMmaRows * W;
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
        const int r = (lane >> 2) + hr * 8;
#pragma unroll
        for (int d = 0; d < D / 8; ++d) {
            const int col = d * 8 + 2 * (lane & 3);
            mine[r * W + col] = o[d][2 * hr];
            mine[r * W + col + 1] = o[d][2 * hr + 1];
        }
        if ((lane & 3) == 0) {
            mine[r * W + D] = m_run[hr];
            mine[r * W + D + 1] = l_run[hr];
        }
    }
    __syncthreads();
    T *out = static_cast<T *>(p.out);
    const int64_t q_heads = G * p.kv_heads;
    for (int i = tid; i < nrows * W; i += kMmaWarps * 32) {
        const int r = i / W, d = i % W;
        float m = -INFINITY;
#pragma unroll
        for (int w = 0; w < kMmaWarps; ++w) m = fmaxf(m, scratch[(w * kMmaRows + r) * W + D]);
        float acc = 0.0f, l = 0.0f;
        if (m != -INFINITY) {
#pragma unroll
            for (int w = 0; w < kMmaWarps; ++w) {
                const float *row = scratch + (w * kMmaRows + r) * W;
                const float weight = exp2f(row[D] - m);
                l += row[D + 1] * weight;
                if (d < D) acc += row[d] * weight;
            }
        }
        const int64_t row = r0 + r, s = row / G, h = kvh * G + (row - s * G);
        if (p.splits == 1) {
            if (d < D) out[b * p.o_b + s * p.o_s + h * p.o_h + d * p.o_d] = q3::from_float<T>(acc / l);
        } else {
            const int64_t out_row = (b * S + s) * q_heads + h;
            p.part[(out_row * p.splits + split) * W + d] = d < D ? acc : (d == D ? m : l);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Host side.

// A stream-ordered pool for the split partials, one per device, that keeps up to 256 MiB cached
// across stream synchronisations (the default pool releases everything at each one, and the
// seq_lens read-back synchronises every call, so each allocation would map fresh memory).
inline cudaMemPool_t scratch_pool(int device) {
    constexpr int kMaxDevices = 64;
    static std::mutex mutex;
    static cudaMemPool_t pools[kMaxDevices] = {};
    static bool failed[kMaxDevices] = {};
    if (device < 0 || device >= kMaxDevices) return nullptr;
    std::lock_guard<std::mutex> lock(mutex);
    if (pools[device] == nullptr && !failed[device]) {
        cudaMemPoolProps props = {};
        props.allocType = cudaMemAllocationTypePinned;
        props.handleTypes = cudaMemHandleTypeNone;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = device;
        cudaMemPool_t pool = nullptr;
        if (cudaMemPoolCreate(&pool, &props) != cudaSuccess) {
            cudaGetLastError();
            failed[device] = true;
            return nullptr;
        }
        uint64_t threshold = 256ull << 20;
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
        pools[device] = pool;
    }
    return pools[device];
}

template <typename T, bool VEC, int RB>
inline int launch_split_rb(const char *op, const SplitParams &p, int64_t ctas, size_t smem, int64_t out_rows,
                           cudaStream_t stream) {
    auto kernel = split_kernel<T, VEC, RB>;
    cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_LAUNCH_FAILED, op, "cannot reserve %zu bytes of shared memory: %s", smem,
                       cudaGetErrorString(error));
    }
    kernel<<<(unsigned)ctas, kThreads, smem, stream>>>(p);
    if (p.splits > 1) combine_kernel<T><<<(unsigned)out_rows, kThreads, 0, stream>>>(p);
    return Q3_OK;
}

template <typename T, bool VEC>
inline int launch_split_vec(const char *op, const SplitParams &p, int rb, int64_t ctas, size_t smem,
                            int64_t out_rows, cudaStream_t stream) {
    switch (rb) {
    case 1: return launch_split_rb<T, VEC, 1>(op, p, ctas, smem, out_rows, stream);
    case 2: return launch_split_rb<T, VEC, 2>(op, p, ctas, smem, out_rows, stream);
    case 4: return launch_split_rb<T, VEC, 4>(op, p, ctas, smem, out_rows, stream);
    case 8: return launch_split_rb<T, VEC, 8>(op, p, ctas, smem, out_rows, stream);
    default: return launch_split_rb<T, VEC, 16>(op, p, ctas, smem, out_rows, stream);
    }
}

// True when a cache tensor [*, *, Hkv, D] can be copied in 16-byte chunks.
inline bool vector_layout(const q3_tensor &t, int elem_size) {
    const int64_t vec = 16 / elem_size;
    const int last = t.ndim - 1;
    if (t.strides[last] != 1 && t.shape[last] > 1) return false;
    if (t.shape[last] % vec != 0) return false;
    if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) return false;
    for (int d = 0; d < last; ++d) {
        if (t.shape[d] > 1 && t.strides[d] % vec != 0) return false;
    }
    return true;
}

// Fills the tiling fields of p (everything but the tensor fields and scale must be set), launches
// the split kernel and, with several splits, the combine kernel on a temporary buffer.
// longest: the largest seq_len; sms: multiprocessors of the device.
template <typename T, int D>
inline int launch_decode_mma(const char *op, const SplitParams &p, int64_t ctas, int64_t out_rows,
                             cudaStream_t stream) {
    auto kernel = decode_mma_kernel<T, D>;
    const size_t smem = decode_mma_smem_bytes<D>();
    cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_LAUNCH_FAILED, op, "cannot reserve %zu bytes of shared memory: %s", smem,
                       cudaGetErrorString(error));
    }
    kernel<<<(unsigned)ctas, kMmaWarps * 32, smem, stream>>>(p);
    if (p.splits > 1) combine_kernel<T><<<(unsigned)out_rows, kThreads, 0, stream>>>(p);
    return Q3_OK;
}

template <typename T>
int launch_split(const char *op, SplitParams p, bool vec, int64_t longest, cudaStream_t stream) {
    constexpr int VECN = TileShape<T>::kVec, KT = TileShape<T>::kKeys, NG = kThreads / KT;
    int status, sms = 0, smem_max = 0;
    if ((status = q3_cuda_device_attribute(op, cudaDevAttrMultiProcessorCount, &sms)) != Q3_OK) return status;
    if ((status = q3_cuda_device_attribute(op, cudaDevAttrMaxSharedMemoryPerBlockOptin, &smem_max)) != Q3_OK) {
        return status;
    }
    const int64_t head_dim = p.head_dim;
    p.dr = static_cast<int>((head_dim + VECN - 1) / VECN * VECN);
    const int64_t rows = p.new_tokens * p.group;  // query rows per (request, kv head)
    // Tensor cores for 16-bit k/v rows that copy in 16-byte chunks and the usual head sizes.
    const bool mma = sizeof(T) == 2 && vec && (head_dim == 64 || head_dim == 128);
    int rb = 1, rpc, key_align, per_sm, min_keys;
    size_t smem = 0;
    if (mma) {
        rpc = kMmaRows;
        key_align = kMmaKeys;
        per_sm = 2;
        min_keys = 256;
    } else {
        while (rb < 16 && rb * NG < rows) rb *= 2;
        // Fewer rows per CTA when the head is too wide for shared memory.
        while (rb > 1 && split_smem_bytes<T>(rb * NG, p.dr) > (size_t)smem_max) rb /= 2;
        smem = split_smem_bytes<T>(rb * NG, p.dr);
        if (smem > (size_t)smem_max) {
            return q3_fail(Q3_UNSUPPORTED, op, "head_dim %lld is too large for the CUDA attention kernel",
                           (long long)head_dim);
        }
        rpc = rb * NG;
        key_align = KT;
        per_sm = 2;
        min_keys = 4 * KT;
    }
    p.natural = mma ? 0 : 1;
    p.row_chunks = (rows + rpc - 1) / rpc;
    const int64_t base = static_cast<int64_t>(p.batch) * p.kv_heads * p.row_chunks;
    // About four waves of resident CTAs (several splits even out requests of unequal length), but
    // no split shorter than min_keys: the combine merges every split of a row.
    const int64_t target = 4LL * per_sm * sms;
    const int64_t max_splits = (longest + min_keys - 1) / min_keys;
    int64_t splits = (target + base / 2) / base;
    if (splits > max_splits) splits = max_splits;
    if (splits < 1) splits = 1;
    const int64_t per_split = (longest + splits - 1) / splits;
    p.chunk_keys = (per_split + key_align - 1) / key_align * key_align;
    if (p.chunk_keys < key_align) p.chunk_keys = key_align;
    splits = (longest + p.chunk_keys - 1) / p.chunk_keys;
    if (splits < 1) splits = 1;
    p.splits = static_cast<int>(splits);
    const int64_t ctas = base * splits;
    const int64_t out_rows = static_cast<int64_t>(p.batch) * p.new_tokens * p.group * p.kv_heads;
    if (ctas > INT_MAX || out_rows > INT_MAX) {
        return q3_fail(Q3_UNSUPPORTED, op, "too many attention rows for one CUDA launch");
    }
    p.part = nullptr;
    if (splits > 1) {
        const size_t bytes = sizeof(float) * (size_t)out_rows * (size_t)splits * (size_t)(head_dim + 2);
        void *part = nullptr;
        cudaError_t error = cudaErrorMemoryAllocation;
        int device = 0;
        cudaMemPool_t pool = cudaGetDevice(&device) == cudaSuccess ? scratch_pool(device) : nullptr;
        if (pool != nullptr) error = cudaMallocFromPoolAsync(&part, bytes, pool, stream);
        if (error != cudaSuccess) {
            cudaGetLastError();
            error = cudaMallocAsync(&part, bytes, stream);
        }
        if (error != cudaSuccess) {
            cudaGetLastError();
            return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate %zu bytes of split partials: %s", bytes,
                           cudaGetErrorString(error));
        }
        p.part = static_cast<float *>(part);
    }
    if constexpr (sizeof(T) == 2) {
        if (mma) {
            status = head_dim == 128 ? launch_decode_mma<T, 128>(op, p, ctas, out_rows, stream)
                                     : launch_decode_mma<T, 64>(op, p, ctas, out_rows, stream);
        }
    }
    if (!mma) {
        status = vec ? launch_split_vec<T, true>(op, p, rb, ctas, smem, out_rows, stream)
                     : launch_split_vec<T, false>(op, p, rb, ctas, smem, out_rows, stream);
    }
    if (p.part != nullptr) cudaFreeAsync(p.part, stream);
    return status;
}

// Dispatch on the dtype code.
inline int launch_split_dtype(const char *op, int dtype, const SplitParams &p, bool vec, int64_t longest,
                              cudaStream_t stream) {
    switch (dtype) {
    case Q3_F32: return launch_split<float>(op, p, vec, longest, stream);
    case Q3_F16: return launch_split<__half>(op, p, vec, longest, stream);
    default: return launch_split<__nv_bfloat16>(op, p, vec, longest, stream);
    }
}

inline int elem_size(int dtype) { return dtype == Q3_F32 ? 4 : 2; }

}  // namespace attn
}  // namespace
