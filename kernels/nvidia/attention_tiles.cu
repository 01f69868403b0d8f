// The split-KV (flash-decoding) attention that attention_decode.cu and attention_prefill.cu launch
// through attention_tiles.h, in one translation unit (so one scratch pool per device).
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
#include <limits.h>

#include <mutex>

#include "attention_split_mma.cuh"

namespace attn {
namespace {

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
    const int status = q3_cuda_reserve_shared_memory(op, reinterpret_cast<const void *>(kernel), smem);
    if (status != Q3_OK) return status;
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

template <typename T, int D>
inline int launch_decode_mma(const char *op, const SplitParams &p, int64_t ctas, int64_t out_rows,
                             cudaStream_t stream) {
    auto kernel = decode_mma_kernel<T, D>;
    const size_t smem = decode_mma_smem_bytes<D>();
    const int status = q3_cuda_reserve_shared_memory(op, reinterpret_cast<const void *>(kernel), smem);
    if (status != Q3_OK) return status;
    kernel<<<(unsigned)ctas, kMmaWarps * 32, smem, stream>>>(p);
    if (p.splits > 1) combine_kernel<T><<<(unsigned)out_rows, kThreads, 0, stream>>>(p);
    return Q3_OK;
}

// launch_split_dtype (attention_tiles.h) for one dtype: the tiling, the partials' buffer, the launches.
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
        // The kernels' static shared memory (the deferred checks' naming, a few hundred bytes) comes
        // out of the same per-block maximum.
        const size_t dynamic_max = (size_t)smem_max > 1024 ? (size_t)smem_max - 1024 : 0;
        while (rb > 1 && split_smem_bytes<T>(rb * NG, p.dr) > dynamic_max) rb /= 2;
        smem = split_smem_bytes<T>(rb * NG, p.dr);
        if (smem > dynamic_max) {
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

}  // namespace

int launch_split_dtype(const char *op, int dtype, const SplitParams &p, bool vec, int64_t longest,
                       cudaStream_t stream) {
    switch (dtype) {
    case Q3_F32: return launch_split<float>(op, p, vec, longest, stream);
    case Q3_F16: return launch_split<__half>(op, p, vec, longest, stream);
    default: return launch_split<__nv_bfloat16>(op, p, vec, longest, stream);
    }
}

}  // namespace attn
