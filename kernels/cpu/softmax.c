/* Softmax over the last dim, and the causal variant over x [..., q_len, k_len]: max-subtracted, each
 * exp(x - max) a float (exp_float.h's q3_exp_single: float arithmetic, within 1.22 ulp), their sum accumulated in double
 * (in vector lanes: the order differs from a sequential sum below double precision), written once in x's
 * dtype, a row at a time through a per-thread row of floats. A row that is all -inf yields NaN, as
 * PyTorch does. */
#include "common.h"
#include "entry.h"
#include "exp_float.h"
#include "parallel.h"
#include "row_io.h"
#include "scratch.h"
#include "simd.h"

/* Copies the n values to e; returns the largest of them and `largest` (NaN values are passed over, as
 * fmaxf passes them: the row's result is NaN through its exponentials anyway). */
Q3_VECTOR_CLONES
static float copy_and_max(float *restrict e, const float *restrict values, int64_t n, float largest) {
#pragma omp simd reduction(max : largest)
    for (int64_t i = 0; i < n; ++i) {
        e[i] = values[i];
        largest = values[i] > largest ? values[i] : largest;
    }
    return largest;
}

/* out[i] = e[i] / total for the n entries. */
Q3_VECTOR_CLONES
static void divide(float *restrict out, const float *restrict e, int64_t n, float total) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = e[i] / total;
}

/* e[c] = exp(e[c] - max_value) for the n entries; returns their sum, in double. */
Q3_VECTOR_CLONES
static double exp_and_sum(float *e, int64_t n, float max_value) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < n; ++c) {
        e[c] = q3_exp_single(e[c] - max_value);
        sum += e[c];
    }
    return sum;
}

/* Softmax of the first `visible` entries of a row; entries visible .. cols-1 are written as 0.
 * `e`: room for `visible` floats, where each exp(x - max) is kept from the sum for the write. */
static void softmax_row(const q3_tensor *out, int64_t out_offset, int64_t out_stride,
                        const q3_tensor *x, int64_t x_offset, int64_t x_stride, int64_t visible,
                        int64_t cols, float *e) {
    q3_chunk chunk;
    float max_value = -INFINITY;
    for (int64_t c = 0; c < visible; c += Q3_ROW_CHUNK) {
        const int64_t n = q3_chunk_length(c, visible);
        q3_load_chunk(x, x_offset + c * x_stride, x_stride, n, &chunk);
        max_value = copy_and_max(e + c, chunk.f, n, max_value);
    }
    double sum = 0.0;  /* chunk by chunk, as softmax_split_row adds them */
    for (int64_t c = 0; c < visible; c += Q3_ROW_CHUNK) sum += exp_and_sum(e + c, q3_chunk_length(c, visible), max_value);
    const float total = (float)sum;
    for (int64_t c = 0; c < cols; c += Q3_ROW_CHUNK) {
        const int64_t n = q3_chunk_length(c, cols), shown = c >= visible ? 0 : q3_chunk_length(c, visible);
        divide(chunk.f, e + c, shown, total);
        for (int64_t i = shown; i < n; ++i) chunk.f[i] = 0.0f;
        q3_store_chunk(out, out_offset + c * out_stride, out_stride, n, &chunk);
    }
}

/* One row split over the threads (there are fewer rows than threads): the same chunks, maximum, exponentials
 * and chunk sums, added in the same order, as softmax_row, so the same values. `e`: room for the row's
 * floats; `sums`: for one double per chunk. */
static void softmax_split_row(const q3_tensor *out, int64_t out_offset, int64_t out_stride, const q3_tensor *x,
                              int64_t x_offset, int64_t x_stride, int64_t cols, float *e, double *sums) {
    const int64_t chunks = (cols + Q3_ROW_CHUNK - 1) / Q3_ROW_CHUNK;
    float max_value = -INFINITY;
#pragma omp parallel for schedule(static) reduction(max : max_value)
    for (int64_t k = 0; k < chunks; ++k) {
        q3_chunk chunk;
        const int64_t c = k * Q3_ROW_CHUNK, n = q3_chunk_length(c, cols);
        q3_load_chunk(x, x_offset + c * x_stride, x_stride, n, &chunk);
        max_value = copy_and_max(e + c, chunk.f, n, max_value);
    }
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
        const int64_t c = k * Q3_ROW_CHUNK;
        sums[k] = exp_and_sum(e + c, q3_chunk_length(c, cols), max_value);
    }
    double sum = 0.0;
    for (int64_t k = 0; k < chunks; ++k) sum += sums[k];
    const float total = (float)sum;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
        q3_chunk chunk;
        const int64_t c = k * Q3_ROW_CHUNK, n = q3_chunk_length(c, cols);
        divide(chunk.f, e + c, n, total);
        q3_store_chunk(out, out_offset + c * out_stride, out_stride, n, &chunk);
    }
}

/* Fewer rows than threads, each long enough to share: each row split over the threads in turn. */
static int softmax_split_rows(const char *op, const q3_tensor *out, const q3_tensor *x, int64_t rows, int64_t cols) {
    const int64_t chunks = (cols + Q3_ROW_CHUNK - 1) / Q3_ROW_CHUNK;
    float *e = malloc(sizeof(float) * (size_t)cols);
    double *sums = malloc(sizeof(double) * (size_t)chunks);
    if (e == NULL || sums == NULL) {
        free(e);
        free(sums);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate a row of %lld floats", (long long)cols);
    }
    for (int64_t row = 0; row < rows; ++row) {
        softmax_split_row(out, q3_row_offset(out, row), out->strides[out->ndim - 1], x, q3_row_offset(x, row),
                          x->strides[x->ndim - 1], cols, e, sums);
    }
    free(e);
    free(sums);
    return Q3_OK;
}

int q3_softmax(q3_tensor out, q3_tensor x, void *stream) {
    Q3_ENTER("softmax", q3_check_softmax_call(op, &out, &x));

    const int64_t rows = q3_rows(&x), cols = x.shape[x.ndim - 1];
    if (rows < q3_max_threads() && q3_parallel(cols)) return softmax_split_rows(op, &out, &x, rows, cols);
    const int64_t x_stride = x.strides[x.ndim - 1], out_stride = out.strides[out.ndim - 1];
    size_t stride;
    char *scratch = q3_scratch_alloc(sizeof(float) * (size_t)cols, &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate a row of %lld floats", (long long)cols);
#pragma omp parallel for schedule(static) if (q3_parallel(rows * cols))
    for (int64_t row = 0; row < rows; ++row) {
        softmax_row(&out, q3_row_offset(&out, row), out_stride, &x, q3_row_offset(&x, row),
                    x_stride, cols, cols, (float *)(scratch + stride * (size_t)q3_thread_id()));
    }
    free(scratch);
    return Q3_OK;
}

int q3_causal_softmax(q3_tensor out, q3_tensor x, void *stream) {
    Q3_ENTER("causal_softmax", q3_check_causal_softmax_call(op, &out, &x));
    const int64_t q_len = x.shape[x.ndim - 2], k_len = x.shape[x.ndim - 1];

    const int64_t rows = q3_rows(&x);
    const int64_t x_stride = x.strides[x.ndim - 1], out_stride = out.strides[out.ndim - 1];
    size_t stride;
    char *scratch = q3_scratch_alloc(sizeof(float) * (size_t)k_len, &stride);
    if (scratch == NULL) return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate a row of %lld floats", (long long)k_len);
#pragma omp parallel for schedule(static) if (q3_parallel(rows * k_len))
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t i = row % q_len;
        softmax_row(&out, q3_row_offset(&out, row), out_stride, &x, q3_row_offset(&x, row),
                    x_stride, i + (k_len - q_len) + 1, k_len, (float *)(scratch + stride * (size_t)q3_thread_id()));
    }
    free(scratch);
    return Q3_OK;
}
