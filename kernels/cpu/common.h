/* Helpers shared by the CPU kernels: dtype conversion and strided loads and stores. */
#ifndef Q3_CPU_COMMON_H
#define Q3_CPU_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checks.h"
#include "qwen3_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline float q3_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent == 0) {
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest even, overflow to inf, NaN kept quiet. */
static inline uint16_t q3_f32_to_f16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) {
        return sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u);
    }
    if (magnitude >= 0x477ff000u) { /* rounds to >= 65520: overflow */
        return sign | 0x7c00u;
    }
    if (magnitude < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float absolute;
        memcpy(&absolute, &magnitude, sizeof absolute);
        float scaled = absolute * 0x1p24f; /* exact: units of the smallest subnormal */
        return sign | (uint16_t)nearbyintf(scaled);
    }
    uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}

static inline float q3_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t q3_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((bits >> 16) | 0x40u);
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* Element at a linear element offset of a float tensor, widened to float. */
static inline float q3_load(const q3_tensor *t, int64_t offset) {
    switch (t->dtype) {
    case Q3_F32: return ((const float *)t->data)[offset];
    case Q3_F16: return q3_f16_to_f32(((const uint16_t *)t->data)[offset]);
    case Q3_BF16: return q3_bf16_to_f32(((const uint16_t *)t->data)[offset]);
    case Q3_F64: return (float)((const double *)t->data)[offset];
    default: return NAN;
    }
}

static inline void q3_store(const q3_tensor *t, int64_t offset, float value) {
    switch (t->dtype) {
    case Q3_F32: ((float *)t->data)[offset] = value; break;
    case Q3_F16: ((uint16_t *)t->data)[offset] = q3_f32_to_f16(value); break;
    case Q3_BF16: ((uint16_t *)t->data)[offset] = q3_f32_to_bf16(value); break;
    case Q3_F64: ((double *)t->data)[offset] = value; break;
    default: break;
    }
}

/* value rounded to the dtype and widened back: the precision an intermediate tensor has. */
static inline float q3_round_to(int dtype, float value) {
    switch (dtype) {
    case Q3_F16: return q3_f16_to_f32(q3_f32_to_f16(value));
    case Q3_BF16: return q3_bf16_to_f32(q3_f32_to_bf16(value));
    default: return value;
    }
}

static inline int64_t q3_load_index(const q3_tensor *t, int64_t offset) {
    return t->dtype == Q3_I32 ? ((const int32_t *)t->data)[offset]
                              : ((const int64_t *)t->data)[offset];
}

#ifdef __cplusplus
}
#endif

#endif
