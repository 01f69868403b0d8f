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

#endif
