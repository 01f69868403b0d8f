"""attention_decode whose new tokens attend to the past only, never to themselves."""

import torch

from operators.backends import load_backend
from reference.attention import eager_attention

WRONG_OPERATOR = "attention_decode"
EXPECTED_REASON = "exceeds its budget"


def attention_decode(*, out, q, k_cache, v_cache, seq_lens, scale):
    new = q.shape[1]
    for b, length in enumerate(seq_lens.tolist()):
        mask = torch.ones(new, length, dtype=torch.bool, device=q.device).tril(diagonal=length - new - 1)
        out[b] = eager_attention(q[b].float(), k_cache[b, :length].float(), v_cache[b, :length].float(), mask, scale)


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: attention_decode})
