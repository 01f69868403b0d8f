/* Rotary position embedding of x [tokens, heads, head_dim], Hugging Face Qwen3 semantics:
 * inv_freq[i] = 1 / theta ** (2i / head_dim) in float32; angle = position * inv_freq[i];
 * NeoX pairs (i, i + head_dim/2), GPT-J pairs (2i, 2i + 1). The inverse frequencies are computed
 * once a call and each token's cos/sin once for all its heads. */
#include <stdlib.h>

#include "common.h"
#include "entry.h"
#include "parallel.h"
#include "row_io.h"
#include "scratch.h"
#include "simd.h"

/* NeoX pairs (i, i + half) of one head row rotated: the same arithmetic as rotate_head's loop, in vector lanes. */
Q3_VECTOR_CLONES
static void rotate_neox(float *restrict out, const float *restrict in, const float *restrict cos_of,
                        const float *restrict sin_of, int64_t half) {
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
        out[i] = in[i] * cos_of[i] - in[i + half] * sin_of[i];
        out[i + half] = in[i + half] * cos_of[i] + in[i] * sin_of[i];
    }
}

/* One head row of `head_dim` elements rotated by the token's cos (cos_sin[0 .. half)) and sin
 * (cos_sin[half .. head_dim)). */
static void rotate_head(const q3_tensor *out, int64_t ob, const q3_tensor *x, int64_t xb, const float *cos_sin,
                        int64_t head_dim, int layout) {
    const int64_t half = head_dim / 2, xs = x->strides[2], os = out->strides[2];
    if (head_dim <= Q3_ROW_CHUNK) {
        q3_chunk in, rotated;
        q3_load_chunk(x, xb, xs, head_dim, &in);
        if (layout == Q3_ROPE_NEOX) {
            rotate_neox(rotated.f, in.f, cos_sin, cos_sin + half, half);
            q3_store_chunk(out, ob, os, head_dim, &rotated);
            return;
        }
        for (int64_t i = 0; i < half; ++i) {
            const int64_t a = layout == Q3_ROPE_NEOX ? i : 2 * i;
            const int64_t b = layout == Q3_ROPE_NEOX ? i + half : 2 * i + 1;
            const float c = cos_sin[i], s = cos_sin[half + i];
            rotated.f[a] = in.f[a] * c - in.f[b] * s;
            rotated.f[b] = in.f[b] * c + in.f[a] * s;
        }
        q3_store_chunk(out, ob, os, head_dim, &rotated);
        return;
    }
    for (int64_t i = 0; i < half; ++i) {
        const int64_t a = layout == Q3_ROPE_NEOX ? i : 2 * i;
        const int64_t b = layout == Q3_ROPE_NEOX ? i + half : 2 * i + 1;
        const float c = cos_sin[i], s = cos_sin[half + i];
        const float xa = q3_load(x, xb + a * xs), xb2 = q3_load(x, xb + b * xs);
        q3_store(out, ob + a * os, xa * c - xb2 * s);
        q3_store(out, ob + b * os, xb2 * c + xa * s);
    }
}

int q3_rope(q3_tensor out, q3_tensor x, q3_tensor positions, double theta, int layout,
            void *stream) {
    Q3_ENTER("rope", q3_check_rope_call(op, &out, &x, &positions, theta, layout));

    const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2], half = head_dim / 2;
    if (tokens == 0 || heads == 0 || half == 0) return Q3_OK;
    /* inv_freq [half]; one table per thread: cos [half], then sin [half]. */
    float *inv_freq = malloc(sizeof(float) * (size_t)half);
    size_t stride;
    char *tables = q3_scratch_alloc(sizeof(float) * 2 * (size_t)half, &stride);
    if (inv_freq == NULL || tables == NULL) {
        free(inv_freq);
        free(tables);
        return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the cos/sin tables");
    }
    for (int64_t i = 0; i < half; ++i) inv_freq[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
#pragma omp parallel for schedule(static) if (q3_parallel(tokens * heads * head_dim))
    for (int64_t t = 0; t < tokens; ++t) {
        float *cos_sin = (float *)(tables + stride * (size_t)q3_thread_id());
        const double position = (double)q3_load_index(&positions, t * positions.strides[0]);
        for (int64_t i = 0; i < half; ++i) {
            const double angle = position * (double)inv_freq[i];
            cos_sin[i] = (float)cos(angle);
            cos_sin[half + i] = (float)sin(angle);
        }
        for (int64_t h = 0; h < heads; ++h) {
            rotate_head(&out, t * out.strides[0] + h * out.strides[1], &x, t * x.strides[0] + h * x.strides[1],
                        cos_sin, head_dim, layout);
        }
    }
    free(inv_freq);
    free(tables);
    return Q3_OK;
}
