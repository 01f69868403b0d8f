// The split-KV kernel on tensor cores (f16/bf16, D in {64, 128}, 16-byte copyable k/v rows), which
// attention_tiles.cu launches. A CTA holds 16 query rows (the M of m16n8k16: the GQA group, times the new tokens) and 4 warps;
// the warps take interleaved 16-key tiles of the CTA's key range, each through its own
// kMmaStages-deep cp.async pipeline, keep their own online softmax, and merge at the end.
#pragma once

#include "attention_split.cuh"

namespace attn {
namespace {

constexpr int kMmaRows = 16, kMmaKeys = 16, kMmaWarps = 4, kMmaStages = 3;

template <int D> constexpr size_t decode_mma_smem_bytes() {
    return 2 * (size_t)(kMmaRows * D + kMmaWarps * kMmaStages * 2 * kMmaKeys * D);
}

template <typename T, int D>
__global__ void __launch_bounds__(kMmaWarps * 32, 2) decode_mma_kernel(const SplitParams p) {
    if (checks_failed(p)) return;
    constexpr int CH = D / 8, ROW_BYTES = D * 2;
    constexpr int TILE = kMmaKeys * D;  // elements of one K (or V) tile
    static_assert(kMmaWarps * kMmaStages * 2 * TILE * 2 >= kMmaWarps * kMmaRows * (D + 2) * 4,
                  "the merge scratch must fit in the tile buffers");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    T *qs = reinterpret_cast<T *>(decode_smem);  // [16][D], swizzled
    T *tiles = qs + kMmaRows * D;              // [warp][stage][K, V][16][D], swizzled
    auto swz = [](int row, int chunk) { return row * D + ((chunk ^ (row & 7)) << 3); };

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const CtaWork work = cta_work(p, kMmaRows);
    const int split = work.split, kvh = work.kvh, nrows = work.nrows;
    const int64_t b = work.b, r0 = work.r0, first_pos = work.first_pos, pos_last = work.pos_last;
    const int64_t kbeg = work.kbeg, kend = work.kend, S = p.new_tokens, G = p.group;
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

}  // namespace
}  // namespace attn
