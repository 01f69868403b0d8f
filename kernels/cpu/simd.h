/* Q3_VECTOR_CLONES: a hot loop's function compiled three times, for AVX-512 (x86-64-v4), AVX2 (v3) and
 * the baseline, the one the processor runs picked when the library loads (GCC's target_clones, which needs
 * glibc's ifunc; other compilers, C libraries and processors get the baseline alone). The clones do the
 * same arithmetic (C11 mode does not contract a * b + c into a fused multiply-add) but for the number of
 * lanes an `omp simd` reduction adds separately (16, 8 or 4 doubles in exp_and_sum: an order that shows
 * below double precision only). */
#ifndef Q3_CPU_SIMD_H
#define Q3_CPU_SIMD_H

#include <stdint.h> /* defines __GLIBC__ where the C library is glibc */

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && defined(__GLIBC__)
#define Q3_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define Q3_VECTOR_CLONES
#endif

#endif
