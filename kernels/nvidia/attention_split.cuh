// The split-KV kernel on CUDA cores (float32, and the layouts and head sizes the tensor-core kernel
// does not take) and the combine kernel that merges splits by log-sum-exp; attention_tiles.cu
// launches them. K/V tiles in shared memory (cp.async when rows are 16-byte copyable, element loads
// otherwise); scores as the CPU reference computes them: dot * scale, expf.
#pragma once

#include "attention_ptx.cuh"
#include "attention_tiles.h"

namespace attn {
namespace {

// ---------------------------------------------------------------------------------------------
// Vector loads from shared memory, widened to float.

// The two 16-bit values of a 32-bit word, widened to float.
__device__ __forceinline__ float2 widen2(const __nv_bfloat16 *, uint32_t w) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w));
}
__device__ __forceinline__ float2 widen2(const __half *, uint32_t w) {
    return __half22float2(*reinterpret_cast<const __half2 *>(&w));
}

// 16 bytes (16 / sizeof(T) elements) at a 16-byte aligned address.
__device__ __forceinline__ void load16(const float *p, float *f) {
    const float4 v = *reinterpret_cast<const float4 *>(p);
    f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
}
template <typename T> __device__ __forceinline__ void load16(const T *p, float *f) {
    const uint4 v = *reinterpret_cast<const uint4 *>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 x = widen2(p, w[i]);
        f[2 * i] = x.x; f[2 * i + 1] = x.y;
    }
}

// 4 elements at an address aligned to 4 * sizeof(T).
__device__ __forceinline__ float4 load4(const float *p) { return *reinterpret_cast<const float4 *>(p); }
template <typename T> __device__ __forceinline__ float4 load4(const T *p) {
    const uint2 v = *reinterpret_cast<const uint2 *>(p);
    const float2 a = widen2(p, v.x), b = widen2(p, v.y);
    return make_float4(a.x, a.y, b.x, b.y);
}

// ---------------------------------------------------------------------------------------------
// The split-KV kernel.

constexpr int kThreads = 128;

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

// What CTA blockIdx.x computes: for request b and kv head kvh, the nrows query rows from r0 of one
// chunk of rows_per_cta (the latest, heaviest chunks first) against keys [kbeg, kend) of one split.
// New token 0 sits at first_pos; the chunk's last row sees positions up to pos_last.
struct CtaWork {
    int split, kvh, nrows;
    int64_t b, r0, first_pos, pos_last, kbeg, kend;
};

__device__ __forceinline__ CtaWork cta_work(const SplitParams &p, int rows_per_cta) {
    int64_t idx = blockIdx.x;
    CtaWork work;
    work.split = static_cast<int>(idx % p.splits);
    idx /= p.splits;
    work.kvh = static_cast<int>(idx % p.kv_heads);
    idx /= p.kv_heads;
    work.b = idx % p.batch;
    const int64_t chunk = p.row_chunks - 1 - idx / p.batch;
    const int64_t len = seq_len(p, work.b);
    const int64_t S = p.new_tokens, G = p.group;
    work.r0 = chunk * rows_per_cta;
    work.nrows = static_cast<int>(min(static_cast<int64_t>(rows_per_cta), S * G - work.r0));
    work.first_pos = len - S;
    work.pos_last = work.first_pos + (work.r0 + work.nrows - 1) / G;
    work.kbeg = static_cast<int64_t>(work.split) * p.chunk_keys;
    work.kend = min(work.pos_last + 1, work.kbeg + p.chunk_keys);
    return work;
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
    if (checks_failed(p)) return;
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
    const CtaWork work = cta_work(p, RPC);
    const int split = work.split, kvh = work.kvh, nrows = work.nrows;
    const int64_t b = work.b, r0 = work.r0, first_pos = work.first_pos;
    const int64_t kbeg = work.kbeg, kend = work.kend, S = p.new_tokens, G = p.group;
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
    if (checks_failed(p)) return;
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

}  // namespace
}  // namespace attn
