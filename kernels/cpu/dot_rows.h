/* Dot products of rows of doubles with a row of floats, summed in double vector lanes (the order
 * differs from a sequential sum only below double precision): up to four rows share each read of the
 * float row (the weight rows of linear and the MoE kernels, attention's key rows), whose rows of doubles
 * q3_double_row widens. */
#ifndef Q3_CPU_DOT_ROWS_H
#define Q3_CPU_DOT_ROWS_H

#include <stdint.h>

#include "common.h"
#include "simd.h"

#define Q3_DOT_ROWS 4 /* rows of doubles that share each read of a float row */

/* row[i] = t's element at offset + i * stride, widened to double, for i < n. */
static inline void q3_double_row(const q3_tensor *t, int64_t offset, int64_t stride, int64_t n, double *row) {
    for (int64_t i = 0; i < n; ++i) row[i] = q3_load(t, offset + i * stride);
}

/* acc[r] = sum_i x[r * x_row + i] * w[i] for r < 4 (rows past `rows`, 2 or 3, repeat row 0, unused). */
Q3_VECTOR_CLONES
static void q3_dot_four_rows(const double *restrict x, int64_t x_row, int64_t rows, const float *restrict w,
                             int64_t k, double acc[Q3_DOT_ROWS]) {
    const double *x0 = x, *x1 = rows > 1 ? x + x_row : x, *x2 = rows > 2 ? x + 2 * x_row : x;
    const double *x3 = rows > 3 ? x + 3 * x_row : x;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t i = 0; i < k; ++i) {
        const double wi = w[i];
        a0 += x0[i] * wi;
        a1 += x1[i] * wi;
        a2 += x2[i] * wi;
        a3 += x3[i] * wi;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* sum_i x[i] * w[i]: a single row of x. */
Q3_VECTOR_CLONES
static double q3_dot_one_row(const double *restrict x, const float *restrict w, int64_t k) {
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < k; ++i) acc += x[i] * (double)w[i];
    return acc;
}

/* acc[r] = sum_i x[r * x_row + i] * w[i] for r < rows (1 to 4). */
static inline void q3_dot_rows(const double *x, int64_t x_row, int64_t rows, const float *w, int64_t k,
                               double acc[Q3_DOT_ROWS]) {
    if (rows == 1) {
        acc[0] = q3_dot_one_row(x, w, k);
    } else {
        q3_dot_four_rows(x, x_row, rows, w, k, acc);
    }
}

#endif
