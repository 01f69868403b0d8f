"""random_sample that keeps the probabilities and their running sum in the logits' dtype (f16/bf16)
instead of float32: the walk lands hundreds of tokens off in a flat distribution."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "random_sample"
EXPECTED_REASON = "rows wrong"


def random_sample(*, out, logits, random, temperature, top_k, top_p):
    probs = torch.softmax(logits.float() / temperature, dim=-1).to(logits.dtype)
    for row in range(probs.shape[0]):
        sorted_probs, order = torch.sort(probs[row], descending=True, stable=True)
        kept = sorted_probs.numel() if top_k <= 0 else min(top_k, sorted_probs.numel())
        cumulative = torch.cumsum(sorted_probs[:kept], dim=0).to(logits.dtype)
        reaching = torch.nonzero(cumulative >= top_p * cumulative[-1])
        kept = int(reaching[0]) + 1 if reaching.numel() else kept
        above = torch.nonzero(cumulative[:kept] > random[row] * cumulative[kept - 1])
        out[row] = order[int(above[0]) if above.numel() else kept - 1]


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: random_sample})
