/* Rows moved as runs of floats, a chunk at a time: a unit-stride float32 or bfloat16 row in typed loops
 * the compiler vectorises (bfloat16 widens by a shift and rounds to nearest even by integer arithmetic),
 * anything else element by element through q3_load / q3_store. Each element's value is exactly the
 * element-by-element path's. */
#ifndef Q3_CPU_ROW_IO_H
#define Q3_CPU_ROW_IO_H

#include "common.h"

#define Q3_ROW_CHUNK 256

/* One chunk of a row: the floats, and their bits for the bfloat16 conversions. */
typedef union {
    float f[Q3_ROW_CHUNK];
    uint32_t u[Q3_ROW_CHUNK];
} q3_chunk;

static inline int64_t q3_chunk_length(int64_t first, int64_t count) {
    return count - first < Q3_ROW_CHUNK ? count - first : Q3_ROW_CHUNK;
}

/* n (<= Q3_ROW_CHUNK) elements of t from `offset`, `stride` apart, widened to float. */
static inline void q3_load_chunk(const q3_tensor *t, int64_t offset, int64_t stride, int64_t n, q3_chunk *c) {
    if (stride == 1 && t->dtype == Q3_F32) {
        memcpy(c->f, (const float *)t->data + offset, (size_t)n * sizeof(float));
    } else if (stride == 1 && t->dtype == Q3_BF16) {
        const uint16_t *source = (const uint16_t *)t->data + offset;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) c->u[i] = (uint32_t)source[i] << 16;
    } else {
        for (int64_t i = 0; i < n; ++i) c->f[i] = q3_load(t, offset + i * stride);
    }
}

/* n elements of t from `offset`, `stride` apart, as floats: in place for unit-stride float32, else widened
 * a chunk at a time into `buffer` (room for n floats). */
static inline const float *q3_float_row(const q3_tensor *t, int64_t offset, int64_t stride, int64_t n, float *buffer) {
    if (stride == 1 && t->dtype == Q3_F32) return (const float *)t->data + offset;
    q3_chunk chunk;
    for (int64_t c = 0; c < n; c += Q3_ROW_CHUNK) {
        const int64_t length = q3_chunk_length(c, n);
        q3_load_chunk(t, offset + c * stride, stride, length, &chunk);
        memcpy(buffer + c, chunk.f, (size_t)length * sizeof(float));
    }
    return buffer;
}

/* The bfloat16 bits of float bits b, as q3_f32_to_bf16: nearest even, NaN kept quiet. */
static inline uint32_t q3_bf16_bits(uint32_t b) {
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    return (b & 0x7fffffffu) > 0x7f800000u ? ((b >> 16) | 0x40u) : rounded;
}

/* The chunk's n floats written to t (rounded to its dtype) from `offset`, `stride` apart. */
static inline void q3_store_chunk(const q3_tensor *t, int64_t offset, int64_t stride, int64_t n, const q3_chunk *c) {
    if (stride == 1 && t->dtype == Q3_F32) {
        memcpy((float *)t->data + offset, c->f, (size_t)n * sizeof(float));
    } else if (stride == 1 && t->dtype == Q3_BF16) {
        uint16_t *target = (uint16_t *)t->data + offset;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) target[i] = (uint16_t)q3_bf16_bits(c->u[i]);
    } else {
        for (int64_t i = 0; i < n; ++i) q3_store(t, offset + i * stride, c->f[i]);
    }
}

/* The chunk's n floats rounded to `dtype` in place (q3_round_to). */
static inline void q3_round_chunk(int dtype, int64_t n, q3_chunk *c) {
    if (dtype == Q3_BF16) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) c->u[i] = q3_bf16_bits(c->u[i]) << 16;
    } else if (dtype != Q3_F32) {
        for (int64_t i = 0; i < n; ++i) c->f[i] = q3_round_to(dtype, c->f[i]);
    }
}

#endif
