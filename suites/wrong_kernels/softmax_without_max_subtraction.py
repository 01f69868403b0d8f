"""softmax as exp(x) / sum(exp(x)) without subtracting the row maximum: overflows on large scores."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "softmax"
EXPECTED_REASON = "NaN parity broken"


def softmax(*, out, x):
    exponentials = torch.exp(x.float())
    out.copy_(exponentials / exponentials.sum(dim=-1, keepdim=True))


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: softmax})
