/* Rotary position embedding of x [tokens, heads, head_dim], Hugging Face Qwen3 semantics:
 * inv_freq[i] = 1 / theta ** (2i / head_dim) in float32; angle = position * inv_freq[i];
 * NeoX pairs (i, i + head_dim/2), GPT-J pairs (2i, 2i + 1). */
#include "common.h"
#include "entry.h"
#include "parallel.h"

int q3_rope(q3_tensor out, q3_tensor x, q3_tensor positions, double theta, int layout,
            void *stream) {
    Q3_ENTER("rope", q3_check_rope_call(op, &out, &x, &positions, theta, layout));

    const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2], half = head_dim / 2;
#pragma omp parallel for collapse(2) schedule(static) if (q3_parallel(tokens * heads * head_dim))
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
            const double position = (double)q3_load_index(&positions, t * positions.strides[0]);
            const int64_t xb = t * x.strides[0] + h * x.strides[1];
            const int64_t ob = t * out.strides[0] + h * out.strides[1];
            for (int64_t i = 0; i < half; ++i) {
                const float inv_freq =
                    1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
                const double angle = position * (double)inv_freq;
                const float c = (float)cos(angle), s = (float)sin(angle);
                const int64_t a = layout == Q3_ROPE_NEOX ? i : 2 * i;
                const int64_t b = layout == Q3_ROPE_NEOX ? i + half : 2 * i + 1;
                const float xa = q3_load(&x, xb + a * x.strides[2]);
                const float xb2 = q3_load(&x, xb + b * x.strides[2]);
                q3_store(&out, ob + a * out.strides[2], xa * c - xb2 * s);
                q3_store(&out, ob + b * out.strides[2], xb2 * c + xa * s);
            }
        }
    }
    return Q3_OK;
}
