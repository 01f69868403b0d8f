"""random_sample that applies top-k and top-p to softmax(logits) and the temperature only afterwards
(transformers divides by the temperature first): another set of tokens is kept."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "random_sample"
EXPECTED_REASON = "rows wrong"


def random_sample(*, out, logits, random, temperature, top_k, top_p):
    untempered = torch.softmax(logits.float(), dim=-1)
    tempered = torch.softmax(logits.float() / temperature, dim=-1)
    for row in range(logits.shape[0]):
        sorted_probs, order = torch.sort(untempered[row], descending=True, stable=True)
        kept = sorted_probs.numel() if top_k <= 0 else min(top_k, sorted_probs.numel())
        cumulative = torch.cumsum(sorted_probs[:kept], dim=0)
        reaching = torch.nonzero(cumulative >= top_p * cumulative[-1])
        kept = int(reaching[0]) + 1 if reaching.numel() else kept
        walk = torch.cumsum(tempered[row][order[:kept]], dim=0)
        above = torch.nonzero(walk > random[row] * walk[-1])
        out[row] = order[int(above[0]) if above.numel() else kept - 1]


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: random_sample})
