// The split-KV (flash-decoding) attention of attention_tiles.cu as attention_decode.cu and
// attention_prefill.cu launch it: the parameters of one launch, the layout test and the launcher.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "deferred_check.cuh"
#include "qwen3_kernels.h"

namespace attn {

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
    q3r::IndexGuard guards[2];  // the checks of seq_lens and the block table (deferred_check.cuh)
    int guard_count;
};

// Opens every kernel of the attention, called by all its threads: true when a check failed and the
// kernel must write nothing.
__device__ __forceinline__ bool checks_failed(const SplitParams &p) {
    bool failed = false;
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // constant indices: the guards stay in the parameter bank
        if (i < p.guard_count) failed |= q3r::write_blocked(p.guards[i]);
    }
    return failed;
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

inline int elem_size(int dtype) { return dtype == Q3_F32 ? 4 : 2; }

// Fills the tiling fields of p (everything but the tensor fields and scale must be set) and launches
// the split kernel of the dtype and, with several splits, the combine kernel on a temporary buffer.
// longest: the largest seq_len there can be (the cache's capacity: the lengths stay on the device). Q3_OK, or a status naming op.
int launch_split_dtype(const char *op, int dtype, const SplitParams &p, bool vec, int64_t longest,
                       cudaStream_t stream);

}  // namespace attn
