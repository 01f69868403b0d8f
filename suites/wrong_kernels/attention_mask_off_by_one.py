"""attention_prefill whose causal mask lets each query see one token into the future."""

import torch

from operators.backends import load_backend
from reference.attention import eager_attention

WRONG_OPERATOR = "attention_prefill"
EXPECTED_REASON = "exceeds its budget"


def attention_prefill(*, out, q, k, v, scale):
    tokens = q.shape[0]
    mask = torch.ones(tokens, tokens, dtype=torch.bool, device=q.device).tril(diagonal=1)
    out.copy_(eager_attention(q.float(), k.float(), v.float(), mask, scale))


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: attention_prefill})
