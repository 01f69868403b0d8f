/* Validation of single tensors: each returns Q3_OK or records an error naming op and tensor. */
#ifndef Q3_HOST_CHECKS_H
#define Q3_HOST_CHECKS_H

#include <stdint.h>

#include "shape.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

int q3_check_tensor(const char *op, const char *name, const q3_tensor *t);
int q3_check_float(const char *op, const char *name, const q3_tensor *t);
int q3_check_index(const char *op, const char *name, const q3_tensor *t);
int q3_check_ndim(const char *op, const char *name, const q3_tensor *t, int ndim);
int q3_check_same_dtype(const char *op, const char *name, const q3_tensor *t,
                        const char *like_name, const q3_tensor *like);
int q3_check_same_shape(const char *op, const char *name, const q3_tensor *t,
                        const char *like_name, const q3_tensor *like);
/* An elementwise weight: x's dtype, or float32 next to f16/bf16 x. */
int q3_check_weight_dtype(const char *op, const char *name, const q3_tensor *w,
                          const q3_tensor *x);
/* The dims of `t` of size > 1 as {stride, size}, by rising stride; returns how many. */
int q3_dims_by_stride(const q3_tensor *t, int64_t dims[Q3_MAX_DIMS][2]);
/* Fails when two distinct writes of `t` could land on one element (zero or overlapping strides). */
int q3_check_writable(const char *op, const char *name, const q3_tensor *t);
/* Q3_OK when each of the `count` values is in [0, limit) and none repeats (a bitmap over the
 * range: linear time); the error names the tensor, the value and its index. `request` >= 0 adds
 * the request to the message (values[i] is then entry [request, i]). */
int q3_check_index_set(const char *op, const char *name, const int64_t *values, int64_t count,
                       int64_t limit, int64_t request);

#ifdef __cplusplus
}
#endif

#endif
