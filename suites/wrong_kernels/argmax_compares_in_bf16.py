"""argmax that compares the logits after rounding them to bfloat16 (a narrower comparison type)."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "argmax"
EXPECTED_REASON = "rows wrong"


def backend(device):
    native = load_backend("native", device)

    def argmax(*, out, logits):
        out.copy_(torch.argmax(logits.to(torch.bfloat16), dim=-1))

    return native.with_kernels(__name__, {WRONG_OPERATOR: argmax})
