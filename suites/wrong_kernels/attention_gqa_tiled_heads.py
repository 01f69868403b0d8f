"""attention_prefill mapping query head h to kv head h % Hkv (tiling) instead of h // (Hq / Hkv)."""

import torch

from operators.backends import load_backend
from reference.softmax import causal_mask

WRONG_OPERATOR = "attention_prefill"
EXPECTED_REASON = "exceeds its budget"


def attention_prefill(*, out, q, k, v, scale):
    groups = q.shape[1] // k.shape[1]
    keys, values = k.float().repeat(1, groups, 1), v.float().repeat(1, groups, 1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), keys) * scale
    scores = scores.masked_fill(~causal_mask(q.shape[0], k.shape[0], q.device), float("-inf"))
    out.copy_(torch.einsum("hqk,khd->qhd", scores.softmax(-1), values))


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: attention_prefill})
