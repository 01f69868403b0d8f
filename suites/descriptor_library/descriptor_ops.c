/* A small vendor-style operator library with a descriptor API, as kernel libraries not written for
 * the harness look: describe the call once (dtype, sizes, strides), ask how much workspace it needs,
 * run it on a stream, destroy the descriptor. float32 rows with a unit last stride only; anything
 * else is refused with DL_UNSUPPORTED. The harness's example adapter is backend.py next to it. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

enum { DL_OK = 0, DL_UNSUPPORTED = 1, DL_BAD_ARGUMENT = 2, DL_NO_MEMORY = 3 };
enum { DL_F32 = 0, DL_F16 = 1, DL_BF16 = 2 };

typedef struct {
    int64_t rows, cols, out_stride, a_stride, b_stride;
    float eps;
} dl_descriptor;

static int describe(dl_descriptor **out, int dtype, int64_t rows, int64_t cols, const int64_t strides[6]) {
    if (out == NULL || rows < 0 || cols < 0) return DL_BAD_ARGUMENT;
    if (dtype != DL_F32) return DL_UNSUPPORTED;
    for (int i = 1; i < 6; i += 2)
        if (strides[i] != 1 && cols > 1) return DL_UNSUPPORTED; /* rows must be dense */
    dl_descriptor *d = malloc(sizeof *d);
    if (d == NULL) return DL_NO_MEMORY;
    d->rows = rows, d->cols = cols, d->out_stride = strides[0], d->a_stride = strides[2], d->b_stride = strides[4];
    d->eps = 0.0f;
    *out = d;
    return DL_OK;
}

/* strides: out row, out col, gate row, gate col, up row, up col (elements) */
int dl_create_swiglu(dl_descriptor **out, int dtype, int64_t rows, int64_t cols, const int64_t strides[6]) {
    return describe(out, dtype, rows, cols, strides);
}

/* strides: out row, out col, x row, x col, weight (0), weight col */
int dl_create_rms_norm(dl_descriptor **out, int dtype, int64_t rows, int64_t cols, const int64_t strides[6],
                       float eps) {
    int status = describe(out, dtype, rows, cols, strides);
    if (status == DL_OK) (*out)->eps = eps;
    return status;
}

int dl_workspace_size(const dl_descriptor *d, size_t *bytes) {
    if (d == NULL || bytes == NULL) return DL_BAD_ARGUMENT;
    *bytes = (size_t)d->cols * sizeof(float); /* one row of staging */
    return DL_OK;
}

int dl_swiglu(const dl_descriptor *d, void *workspace, size_t workspace_bytes, float *out, const float *gate,
              const float *up, void *stream) {
    (void)stream;
    if (d == NULL || workspace_bytes < (size_t)d->cols * sizeof(float)) return DL_BAD_ARGUMENT;
    float *staged = workspace;
    for (int64_t r = 0; r < d->rows; ++r) {
        const float *g = gate + r * d->a_stride, *u = up + r * d->b_stride;
        for (int64_t c = 0; c < d->cols; ++c) staged[c] = g[c] / (1.0f + expf(-g[c]));
        for (int64_t c = 0; c < d->cols; ++c) out[r * d->out_stride + c] = staged[c] * u[c];
    }
    return DL_OK;
}

int dl_rms_norm(const dl_descriptor *d, void *workspace, size_t workspace_bytes, float *out, const float *x,
                const float *weight, void *stream) {
    (void)stream, (void)workspace;
    if (d == NULL || workspace_bytes < (size_t)d->cols * sizeof(float)) return DL_BAD_ARGUMENT;
    for (int64_t r = 0; r < d->rows; ++r) {
        const float *row = x + r * d->a_stride;
        double squares = 0.0;
        for (int64_t c = 0; c < d->cols; ++c) squares += (double)row[c] * row[c];
        float inverse = (float)(1.0 / sqrt(squares / (double)(d->cols ? d->cols : 1) + (double)d->eps));
        for (int64_t c = 0; c < d->cols; ++c) out[r * d->out_stride + c] = weight[c] * (row[c] * inverse);
    }
    return DL_OK;
}

int dl_destroy(dl_descriptor *d) {
    free(d);
    return DL_OK;
}
