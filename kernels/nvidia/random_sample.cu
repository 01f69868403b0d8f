// One token per row of logits [B, V] from an explicit uniform value random[b] in [0, 1), as
// kernels/cpu/random_sample.c: p = softmax(logits / temperature) in float32 (max-subtracted, the sum
// in double, p = e / (float)sum); order by descending p, ties by lower index; keep the first top_k;
// keep the shortest prefix whose cumulative p reaches top_p * (kept total); pick the first kept token
// whose cumulative p exceeds random * (prefix total).
//
// No sort. One CTA of 1024 threads per row. p's float bits are its order key (p >= 0), stored in a
// [B, V] scratch. Cumulative sums are exact: each p is taken in 2^-52 fixed point (integer sums,
// exact in double below 2^53; the truncation is < 2^-52 per token), so integer atomics give
// deterministic sums in any order. Each of the (at most three) crossings of the walk -
// the top_k-th token (by count), the top-p prefix end (cumulative >= target) and the pick
// (cumulative > target) - is found by an MSB-first radix descent over the key: 11 + 10 + 10 bits,
// a histogram of counts and sums per level (the first level's is built once with the keys), each
// scanned from the largest bucket down by one warp (counts by shared-memory atomics, fixed-point
// sums by native 64-bit reductions into a global per-row scratch, copied to shared for the scan). The crossing key v then gives the sum S of all
// p above it, and the crossing lies at the m-th of the tokens tied at v, m = the fewest whose sum
// m * p(v) takes S past the target; ties are ordered by index, so the token is the m-th smallest
// index with key v (the smallest is kept by the last histogram; a pass finds any other).
// A NaN sum (NaN/inf logits) makes every p NaN; the CPU walk then returns index (kept count - 1).
#include <limits.h>

#include "common.cuh"
#include "deferred_check.cuh"
#include "entry.h"

namespace {

constexpr int kThreads = 1024;
constexpr int kUnroll = 8;  // loads in flight per thread and pass
constexpr int64_t kStep = (int64_t)kThreads * kUnroll;
constexpr int kLevel1 = 2048;  // key bits 30..20 (bit 31, the sign, is 0)
constexpr int kLevel = 1024;   // key bits 19..10, then 9..0
constexpr unsigned kFull = 0xffffffffu;
constexpr uint32_t kNoKey = 0xffffffffu;  // never a key: keys are < 2^31
constexpr float kFixedScale = 4503599627370496.0f;  // 2^52

enum Mode { kCountAtLeast = 0, kSumAtLeast = 1, kSumAbove = 2 };

typedef unsigned long long u64;

struct Shared {
    uint32_t h1_count[kLevel1];
    u64 h1_sum[kLevel1];  // copies of the global fixed-point sums, for the scans
    uint32_t w_count[kLevel];
    u64 w_sum[kLevel];
    uint32_t w_min[kLevel];
    float red_f[32];
    double red_d[32];
    uint32_t red_c[32];
    int bucket;  // result of the last bucket scan
    u64 c_above, s_above;
    uint32_t key, c_eq, min_index;  // result of the last search
    uint32_t answer;
};

__device__ __forceinline__ u64 fixed_of(uint32_t key) { return __float2ull_rz(__uint_as_float(key) * kFixedScale); }

__device__ __forceinline__ bool crossed(int mode, u64 c, u64 s, u64 target_c, double target_s) {
    return mode == kCountAtLeast ? c >= target_c : mode == kSumAtLeast ? (double)s >= target_s : (double)s > target_s;
}

// m clamped to [1, c_eq] (c_eq >= 1: a crossing bucket is never empty).
__device__ __forceinline__ u64 clamp_count(double m, uint32_t c_eq) {
    if (!(m >= 1.0)) return 1;
    if (m >= (double)c_eq) return c_eq > 0 ? c_eq : 1;
    return (u64)m;
}

__device__ float block_max(float v, Shared &sh) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, offset));
    if (lane == 0) sh.red_f[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = sh.red_f[lane];
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, offset));
        if (lane == 0) sh.red_f[0] = v;
    }
    __syncthreads();
    v = sh.red_f[0];
    __syncthreads();
    return v;
}

__device__ double block_sum(double v, Shared &sh) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFull, v, offset);
    if (lane == 0) sh.red_d[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = sh.red_d[lane];
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFull, v, offset);
        if (lane == 0) sh.red_d[0] = v;
    }
    __syncthreads();
    v = sh.red_d[0];
    __syncthreads();
    return v;
}

// Warp 0 only: walking the buckets from the largest key down, the first bucket whose inclusive
// cumulative (base + all buckets before it + itself) crosses the target; sets sh.bucket and the
// totals of the buckets before it (plus base) in sh.c_above / sh.s_above.
__device__ void scan_buckets(const uint32_t *count, const u64 *sum, int buckets, int mode, u64 target_c,
                             double target_s, u64 base_c, u64 base_s, Shared &sh) {
    const int lane = threadIdx.x % 32;
    const int per_lane = buckets / 32;
    const int q0 = lane * per_lane;  // positions q0 .. q0 + per_lane - 1; bucket = buckets - 1 - q
    u64 own_c = 0, own_s = 0;
    for (int j = 0; j < per_lane; ++j) {
        const int b = buckets - 1 - (q0 + j);
        own_c += count[b];
        own_s += sum[b];
    }
    u64 incl_c = own_c, incl_s = own_s;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        const u64 c = __shfl_up_sync(kFull, incl_c, offset), s = __shfl_up_sync(kFull, incl_s, offset);
        if (lane >= offset) incl_c += c, incl_s += s;
    }
    const u64 total_c = __shfl_sync(kFull, incl_c, 31);
    unsigned hits = __ballot_sync(kFull, crossed(mode, base_c + incl_c, base_s + incl_s, target_c, target_s));
    if (hits == 0) {
        // Only float rounding of a sum target can get here: take the last non-empty bucket.
        mode = kCountAtLeast;
        target_c = base_c + total_c;
        hits = __ballot_sync(kFull, base_c + incl_c >= target_c);
    }
    const int first = __ffs(hits) - 1;
    if (lane == first) {
        u64 c = base_c + incl_c - own_c, s = base_s + incl_s - own_s;
        int found = buckets - 1 - (q0 + per_lane - 1);
        for (int j = 0; j < per_lane; ++j) {
            const int b = buckets - 1 - (q0 + j);
            const u64 bucket_sum = sum[b];
            if (crossed(mode, c + count[b], s + bucket_sum, target_c, target_s)) {
                found = b;
                break;
            }
            c += count[b];
            s += bucket_sum;
        }
        sh.bucket = found;
        sh.c_above = c;
        sh.s_above = s;
    }
}

// The crossing of the walk over all V tokens in sorted order: sets sh.key (the key of the tokens
// where it happens), sh.c_above / sh.s_above (count and fixed-point sum of all tokens with a larger
// key), sh.c_eq (tokens with that key) and sh.min_index (the smallest index among them).
__device__ __noinline__ void search(Shared &sh, const uint32_t *keys, u64 *sums, int64_t vocab, int mode, u64 target_c,
                                    double target_s) {
    u64 *w_sum = sums + kLevel1;
    const int tid = threadIdx.x;
    if (tid < 32) scan_buckets(sh.h1_count, sh.h1_sum, kLevel1, mode, target_c, target_s, 0, 0, sh);
    __syncthreads();
    uint32_t prefix = (uint32_t)sh.bucket;
    u64 base_c = sh.c_above, base_s = sh.s_above;
    for (int level = 2; level <= 3; ++level) {
        const int shift = level == 2 ? 20 : 10;  // the bits above the digit of this level
        if (tid < kLevel) {
            sh.w_count[tid] = 0;
            w_sum[tid] = 0;
            sh.w_min[tid] = UINT_MAX;
        }
        __syncthreads();
        for (int64_t start = 0; start < vocab; start += kStep) {
            uint32_t loaded[kUnroll];
#pragma unroll
            for (int j = 0; j < kUnroll; ++j) {
                const int64_t i = start + j * kThreads + tid;
                loaded[j] = i < vocab ? keys[i] : kNoKey;
            }
#pragma unroll
            for (int j = 0; j < kUnroll; ++j) {
                const int64_t i = start + j * kThreads + tid;
                const uint32_t key = loaded[j];
                const bool match = key != kNoKey && (key >> shift) == prefix;
                if (match) {
                    const int b = (key >> (shift - 10)) & (kLevel - 1);
                    atomicAdd(&sh.w_count[b], 1u);
                    if (level == 2) {
                        const u64 p = fixed_of(key);
                        if (p != 0) atomicAdd(&w_sum[b], p);  // global: a native 64-bit reduction
                    } else {
                        atomicMin(&sh.w_min[b], (uint32_t)i);
                    }
                }
            }
        }
        __syncthreads();
        if (tid < kLevel) {
            sh.w_sum[tid] = level == 2 ? __ldcg(&w_sum[tid]) : (u64)sh.w_count[tid] * fixed_of((prefix << 10) | tid);
        }
        __syncthreads();
        if (tid < 32) scan_buckets(sh.w_count, sh.w_sum, kLevel, mode, target_c, target_s, base_c, base_s, sh);
        __syncthreads();
        prefix = (prefix << 10) | (uint32_t)sh.bucket;
        base_c = sh.c_above;
        base_s = sh.s_above;
        if (level == 3 && tid == 0) {
            sh.key = prefix;
            sh.c_eq = sh.w_count[sh.bucket];
            sh.min_index = sh.w_min[sh.bucket];
        }
        __syncthreads();
    }
}

// The index of the m-th (1-based) token, in index order, whose key is `key`: each warp counts the
// matches in its contiguous slice (coalesced, ballots), a scan over the warps finds the slice that
// holds the m-th, and that warp walks its slice again.
__device__ __noinline__ uint32_t nth_index(Shared &sh, const uint32_t *keys, int64_t vocab, uint32_t key, u64 m) {
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    constexpr int kWarps = kThreads / 32;
    const int64_t chunk = (vocab + kWarps - 1) / kWarps;
    const int64_t begin = warp * chunk, end = begin + chunk < vocab ? begin + chunk : vocab;
    u64 count = 0;
    for (int64_t base = begin; base < end; base += 32 * kUnroll) {
        uint32_t loaded[kUnroll];
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t i = base + j * 32 + lane;
            loaded[j] = i < end ? keys[i] : kNoKey;
        }
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) count += __popc(__ballot_sync(kFull, loaded[j] == key));
    }
    if (lane == 0) sh.red_c[warp] = (uint32_t)count;
    __syncthreads();
    if (warp == 0) {
        uint32_t w = sh.red_c[lane];
#pragma unroll
        for (int offset = 1; offset < 32; offset <<= 1) {
            const uint32_t c = __shfl_up_sync(kFull, w, offset);
            if (lane >= offset) w += c;
        }
        sh.red_c[lane] = w;  // inclusive totals of warps 0..lane
    }
    __syncthreads();
    const u64 before = warp > 0 ? sh.red_c[warp - 1] : 0;
    if (before < m && m <= before + count) {
        u64 seen = before;
        bool done = false;
        for (int64_t base = begin; !done && base < end; base += 32 * kUnroll) {
            uint32_t loaded[kUnroll];
#pragma unroll
            for (int j = 0; j < kUnroll; ++j) {
                const int64_t i = base + j * 32 + lane;
                loaded[j] = i < end ? keys[i] : kNoKey;
            }
#pragma unroll
            for (int j = 0; j < kUnroll; ++j) {
                const unsigned hits = __ballot_sync(kFull, loaded[j] == key);
                const uint32_t n = __popc(hits);
                if (!done && seen + n >= m) {
                    unsigned rest = hits;  // drop the lowest (m - seen - 1) matches
                    for (u64 t = seen + 1; t < m; ++t) rest &= rest - 1;
                    if (lane == 0) sh.answer = (uint32_t)(base + j * 32 + __ffs(rest) - 1);
                    done = true;
                }
                if (!done) seen += n;
            }
        }
    }
    __syncthreads();
    return sh.answer;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sample_kernel(q3_tensor out, q3_tensor logits, q3_tensor random,
                                                          float temperature, int64_t kept_k, double top_p,
                                                          uint32_t *key_scratch, u64 *sum_scratch, q3r::IndexGuard guard) {
    if (q3r::write_blocked(guard)) return;
    __shared__ Shared sh;
    const int tid = threadIdx.x;
    const int64_t row = blockIdx.x, vocab = logits.shape[1];
    const T *src = static_cast<const T *>(logits.data) + row * logits.strides[0];
    const int64_t stride = logits.strides[1];
    uint32_t *keys = key_scratch + row * vocab;

    float local_max = -INFINITY;
    for (int64_t start = 0; start < vocab; start += kStep) {
        float loaded[kUnroll];
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t i = start + j * kThreads + tid;
            loaded[j] = i < vocab ? q3::to_float(src[i * stride]) : -INFINITY;
        }
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) local_max = fmaxf(local_max, loaded[j] / temperature);
    }
    const float max_value = block_max(local_max, sh);
    double local_sum = 0.0;
    for (int64_t start = 0; start < vocab; start += kStep) {
        float loaded[kUnroll];
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t i = start + j * kThreads + tid;
            loaded[j] = i < vocab ? q3::to_float(src[i * stride]) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t i = start + j * kThreads + tid;
            if (i < vocab) {
                const float e = expf(loaded[j] / temperature - max_value);
                keys[i] = __float_as_uint(e);
                local_sum += e;
            }
        }
    }
    const double sum = block_sum(local_sum, sh);
    if (isnan(sum)) {  // every p is NaN: the CPU walk keeps all kept_k in index order and returns the last
        if (tid == 0) static_cast<int64_t *>(out.data)[row * out.strides[0]] = kept_k - 1;
        return;
    }
    const float total = (float)sum;

    u64 *sums = sum_scratch + row * (kLevel1 + kLevel);
    for (int b = tid; b < kLevel1; b += kThreads) sh.h1_count[b] = 0, sums[b] = 0;
    __syncthreads();
    for (int64_t start = 0; start < vocab; start += kStep) {
        uint32_t loaded[kUnroll];
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t i = start + j * kThreads + tid;
            loaded[j] = i < vocab ? keys[i] : kNoKey;
        }
#pragma unroll
        for (int j = 0; j < kUnroll; ++j) {
            const int64_t i = start + j * kThreads + tid;
            uint32_t key = kNoKey;
            if (i < vocab) {
                key = __float_as_uint(__uint_as_float(loaded[j]) / total);
                keys[i] = key;
            }
            if (key != kNoKey) {
                atomicAdd(&sh.h1_count[key >> 20], 1u);
                const u64 p = fixed_of(key);
                if (p != 0) atomicAdd(&sums[key >> 20], p);  // global: a native 64-bit reduction
            }
        }
    }
    __syncthreads();
    for (int b = tid; b < kLevel1; b += kThreads) sh.h1_sum[b] = __ldcg(&sums[b]);
    __syncthreads();

    // Kept total (fixed point) of the first kept_k tokens.
    u64 kept_total = 0;
    if (kept_k < vocab) {
        search(sh, keys, sums, vocab, kCountAtLeast, (u64)kept_k, 0.0);
        kept_total = sh.s_above + ((u64)kept_k - sh.c_above) * fixed_of(sh.key);
    } else {
        if (tid < 32) {
            u64 s = 0;
            for (int b = tid; b < kLevel1; b += 32) s += sh.h1_sum[b];
#pragma unroll
            for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(kFull, s, offset);
            if (tid == 0) sh.s_above = s;
        }
        __syncthreads();
        kept_total = sh.s_above;
    }
    __syncthreads();
    // The top-p prefix: the first position whose cumulative sum reaches top_p * kept_total.
    u64 prefix_total = kept_total;
    if (top_p < 1.0) {
        const double target = top_p * (double)kept_total;
        search(sh, keys, sums, vocab, kSumAtLeast, 0, target);
        const u64 p = fixed_of(sh.key);
        const u64 m = clamp_count(p > 0 ? ceil((target - (double)sh.s_above) / (double)p) : 1.0, sh.c_eq);
        prefix_total = sh.s_above + m * p;
    }
    __syncthreads();
    // The pick: the first position whose cumulative sum exceeds random * prefix_total.
    const double r = static_cast<const float *>(random.data)[row * random.strides[0]];
    const double target = r * (double)prefix_total;
    search(sh, keys, sums, vocab, kSumAbove, 0, target);
    const u64 p = fixed_of(sh.key);
    const u64 m = clamp_count(p > 0 ? floor((target - (double)sh.s_above) / (double)p) + 1.0 : 1.0, sh.c_eq);
    const uint32_t key = sh.key, min_index = sh.min_index;
    __syncthreads();
    const uint32_t index = m == 1 ? min_index : nth_index(sh, keys, vocab, key, m);
    if (tid == 0) static_cast<int64_t *>(out.data)[row * out.strides[0]] = index;
}

}  // namespace

int q3_random_sample(q3_tensor out, q3_tensor logits, q3_tensor random, double temperature,
                     int64_t top_k, double top_p, void *stream) {
    Q3_ENTER("random_sample", q3_check_random_sample_call(op, &out, &logits, &random, temperature, top_p));
    const int64_t batch = logits.shape[0], vocab = logits.shape[1];
    const float temperature_f = (float)temperature;
    cudaStream_t s = (cudaStream_t)stream;
    if (batch == 0) return Q3_OK;
    if (vocab > INT32_MAX || batch > INT32_MAX) {
        return q3_fail(Q3_UNSUPPORTED, op, "a vocabulary of %lld: at most %d is supported", (long long)vocab,
                       INT32_MAX);
    }
    // The uniforms are checked on the device (deferred_check.cuh): a bad one makes the call write
    // nothing and is reported by q3_take_deferred_error.
    q3r::IndexGuard guard;
    bool on_host;
    const q3r::CheckSpec spec = {"random", q3r::DEFERRED_UNIFORMS, 0, 1, 1, false, nullptr, 0};
    if ((status = q3r::check_deferred(op, spec, random, s, &guard, &on_host)) != Q3_OK) return status;
    const int64_t kept_k = (top_k <= 0 || top_k >= vocab) ? vocab : top_k;
    // Keys [B, V] (u32), then per row the fixed-point bucket sums of the first level and of the
    // later ones ([B, 2048 + 1024] u64, 8-byte aligned).
    const size_t key_bytes = (sizeof(uint32_t) * (size_t)(batch * vocab) + 255) / 256 * 256;
    const size_t sum_bytes = sizeof(u64) * (size_t)batch * (kLevel1 + kLevel);
    void *scratch = NULL;
    if (cudaMallocAsync(&scratch, key_bytes + sum_bytes, s) != cudaSuccess) {
        cudaGetLastError();
        q3r::withdraw_check(&guard, s);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the [%lld, %lld] key scratch", (long long)batch,
                       (long long)vocab);
    }
    uint32_t *keys = static_cast<uint32_t *>(scratch);
    u64 *sums = reinterpret_cast<u64 *>(static_cast<char *>(scratch) + key_bytes);
    Q3_DISPATCH_FLOAT(logits.dtype, T,
                      sample_kernel<T><<<(unsigned)batch, kThreads, 0, s>>>(out, logits, random, temperature_f, kept_k,
                                                                           top_p, keys, sums, guard));
    cudaFreeAsync(scratch, s);
    if ((status = q3_cuda_launch_status(op)) != Q3_OK) {
        q3r::withdraw_check(&guard, s);
    } else {
        q3r::release_guard(&guard, s);
    }
    return status;
}
