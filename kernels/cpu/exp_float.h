/* exp of a float in arithmetic the compiler vectorises (no call, no table): computed in double and rounded
 * once to float. x = n ln2 + r with n = round(x / ln2) (|r| <= ln2 / 2), exp(r) by its Taylor polynomial to
 * r^10 (truncation below 3e-13 relative), 2^n put into the exponent bits. The double is within about 1e-13
 * of exp(x), so the float is exp(x) rounded to nearest but for inputs within about 1e-5 ulp of a halfway
 * point (glibc's expf: within 0.502 ulp; over every float in [-110, 95] the two differ on 74 thousand
 * inputs in a billion, and on 7 of them glibc is the nearer). Below -150 the result is 0 and above 100
 * inf, as expf's; NaN stays NaN (the clamps are comparisons, not fmin/fmax). The loops that call it are
 * compiled with -fno-trapping-math, without which GCC keeps the clamps as branches and does not vectorise. */
#ifndef Q3_CPU_EXP_FLOAT_H
#define Q3_CPU_EXP_FLOAT_H

#include <stdint.h>
#include <string.h>

static inline float q3_exp(float value) {
    double x = (double)value;
    x = x < -150.0 ? -150.0 : x;  /* a comparison, not fmax: NaN passes */
    x = x > 100.0 ? 100.0 : x;
    const double shift = 0x1.8p52;  /* adding it rounds to an integer, kept in the low mantissa bits */
    double n = x * 0x1.71547652b82fep0 + shift;
    uint64_t bits;
    memcpy(&bits, &n, sizeof bits);
    n -= shift;
    const double r = x - n * 0x1.62e42fefa39efp-1;
    double p = 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const uint64_t scale_bits = (bits << 52) + ((uint64_t)1023 << 52);  /* 2^n: -217 <= n <= 145 */
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return (float)(p * scale);
}

/* exp of a float in float arithmetic (twice the vector lanes of q3_exp; within 1.22 ulp over every 7th float in
 * [-110, 95], above 1 ulp on 12 in a million, where q3_exp is within 0.5): x = n ln2 + r
 * with n = round(x / ln2), ln2 split in two so that n ln2_hi is exact (|r| <= ln2 / 2 + 2^-24), exp(r) by its Taylor
 * polynomial to r^7 (truncation below 6e-9 relative), then times 2^(n/2) and 2^(n - n/2), each a normal float,
 * so that results near the float range's ends (inf above 88.72, subnormal below -87.34, 0 below -103.97) are
 * rounded once as expf's are. NaN stays NaN. The softmaxes and silu use it: PyTorch's own vectorised expf
 * is a 1-ulp one, and their budgets catch a 20-ulp polynomial (planted: degree 5 fails both). */
static inline float q3_exp_single(float x) {
    x = x < -104.0f ? -104.0f : x;  /* comparisons, not fminf/fmaxf: NaN passes */
    x = x > 89.0f ? 89.0f : x;
    const float shift = 0x1.8p23f;  /* adding it rounds to an integer, kept in the low mantissa bits */
    float n = x * 0x1.715476p0f + shift;
    uint32_t bits;
    memcpy(&bits, &n, sizeof bits);
    n -= shift;
    const float r = (x - n * 0x1.62e400p-1f) - n * 0x1.7f7d1cp-20f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t k = (int32_t)(bits - 0x4b400000u);  /* n: the bits of 1.5 * 2^23 + n, less those of 1.5 * 2^23 */
    const int32_t half = k >> 1;
    const uint32_t first = (uint32_t)(half + 127) << 23, second = (uint32_t)(k - half + 127) << 23;
    float s1, s2;
    memcpy(&s1, &first, sizeof s1);
    memcpy(&s2, &second, sizeof s2);
    return p * s1 * s2;
}

#endif
