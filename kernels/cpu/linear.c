/* Linear layer: out[..., n] = sum_k x[..., k] * weight[n, k] (+ bias[n]), accumulated in double (in
 * vector lanes: the order differs from a sequential sum only below double precision) and rounded once
 * to the output dtype. x, weight, bias and out share one dtype. The rows of x are widened to double a
 * group at a time; each weight row (float32: in place when unit-stride, else a float32 copy) is read
 * once for four rows of x, in blocks of weight rows that stay in cache while every row of the group
 * passes. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "parallel.h"
#include "dot_rows.h"
#include "row_io.h"
#include "scratch.h"

#define ROW_GROUP 64 /* rows of x widened to double at a time */
#define OUT_TILE 16  /* weight rows of a block (64 KiB of float32 at K = 1024) */

/* Row n of the weight as float32: in place when it is float32 with unit stride, else from `packed`. */
static const float *weight_row(const q3_tensor *weight, const float *packed, int64_t n, int64_t k) {
    if (packed == NULL) return (const float *)weight->data + n * weight->strides[0];
    return packed + n * k;
}

/* The weight widened to float32, [N, K] contiguous (for 16-bit or strided weights). */
static void pack_weight(const q3_tensor *weight, float *packed, int64_t out_features, int64_t k) {
#pragma omp parallel for schedule(static) if (q3_parallel(out_features * k))
    for (int64_t n = 0; n < out_features; ++n) {
        q3_float_row(weight, n * weight->strides[0], weight->strides[1], k, packed + n * k);
    }
}

int q3_linear(q3_tensor out, q3_tensor x, q3_tensor weight, q3_tensor bias, void *stream) {
    Q3_ENTER("linear", q3_check_linear_call(op, &out, &x, &weight, &bias));
    const int has_bias = bias.data != NULL;
    const int64_t k = x.shape[x.ndim - 1], out_features = weight.shape[0];
    const int64_t rows = q3_rows(&x);
    const int in_place = weight.dtype == Q3_F32 && weight.strides[1] == 1;

    float *packed = in_place ? NULL : malloc(sizeof(float) * (size_t)(out_features * k + 1));
    const int64_t group_rows = rows < ROW_GROUP ? rows : ROW_GROUP;
    double *group = malloc(sizeof(double) * (size_t)(group_rows * k + 1));
    if ((!in_place && packed == NULL) || group == NULL) {
        free(packed);
        free(group);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate float32 copies of 'weight' and 'x'");
    }
    if (!in_place) pack_weight(&weight, packed, out_features, k);

    const int64_t x_stride = x.strides[x.ndim - 1], out_stride = out.strides[out.ndim - 1];
    const int64_t blocks = (out_features + OUT_TILE - 1) / OUT_TILE;
    for (int64_t first = 0; first < rows; first += ROW_GROUP) {
        const int64_t count = rows - first < ROW_GROUP ? rows - first : ROW_GROUP;
        const int64_t tiles = (count + Q3_DOT_ROWS - 1) / Q3_DOT_ROWS;
        for (int64_t r = 0; r < count; ++r) {
            const int64_t offset = q3_row_offset(&x, first + r);
            q3_double_row(&x, offset, x_stride, k, group + r * k);
        }
#pragma omp parallel for schedule(static) if (q3_parallel(count * k * out_features))
        for (int64_t block = 0; block < blocks; ++block) {
            const int64_t last = (block + 1) * OUT_TILE < out_features ? (block + 1) * OUT_TILE : out_features;
            for (int64_t tile = 0; tile < tiles; ++tile) {
                const int64_t r0 = tile * Q3_DOT_ROWS;
                const int64_t tile_rows = count - r0 < Q3_DOT_ROWS ? count - r0 : Q3_DOT_ROWS;
                for (int64_t n = block * OUT_TILE; n < last; ++n) {
                    double acc[Q3_DOT_ROWS];
                    q3_dot_rows(group + r0 * k, k, tile_rows, weight_row(&weight, packed, n, k), k, acc);
                    const double b = has_bias ? q3_load(&bias, n * bias.strides[0]) : 0.0;
                    for (int64_t r = 0; r < tile_rows; ++r) {
                        q3_store(&out, q3_row_offset(&out, first + r0 + r) + n * out_stride, (float)(b + acc[r]));
                    }
                }
            }
        }
    }
    free(group);
    free(packed);
    return Q3_OK;
}
