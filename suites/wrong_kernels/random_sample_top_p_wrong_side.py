"""random_sample whose top-p cut drops the token that crosses the threshold instead of keeping it."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "random_sample"
EXPECTED_REASON = "rows wrong"


def random_sample(*, out, logits, random, temperature, top_k, top_p):
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    for row in range(probs.shape[0]):
        sorted_probs, order = torch.sort(probs[row], descending=True, stable=True)
        kept = sorted_probs.numel() if top_k <= 0 else min(top_k, sorted_probs.numel())
        cumulative = torch.cumsum(sorted_probs[:kept], dim=0)
        below = int((cumulative < top_p * cumulative[-1]).sum())
        end = max(below, 1)  # the crossing token is left out
        total = cumulative[end - 1]
        pick = int((cumulative[:end] <= random[row].float() * total).sum().clamp_max(end - 1))
        out[row] = order[pick]


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: random_sample})
