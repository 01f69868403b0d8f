"""rms_norm whose long-row path (rows past 4096 items, more than one block's registers hold) takes
the mean of squares over the first 4096 items only: every row up to 4096 is right."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "rms_norm"
EXPECTED_REASON = "exceeds its budget"
BLOCK_ITEMS = 4096


def backend(device):
    native = load_backend("native", device)

    def rms_norm(*, out, x, weight, eps):
        if x.shape[-1] <= BLOCK_ITEMS:
            return native.kernel("rms_norm")(out=out, x=x, weight=weight, eps=eps)
        hidden = x.to(torch.float32)
        mean_square = hidden[..., :BLOCK_ITEMS].pow(2).mean(-1, keepdim=True)
        out.copy_(weight * (hidden * torch.rsqrt(mean_square + eps)).to(x.dtype))

    return native.with_kernels(__name__, {WRONG_OPERATOR: rms_norm})
