"""rms_norm that forgets the weight: the native kernel called with a weight of ones."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "rms_norm"
EXPECTED_REASON = "exceeds its budget"


def backend(device):
    native = load_backend("native", device)

    def rms_norm(*, out, x, weight, eps):
        native.kernel("rms_norm")(out=out, x=x, weight=torch.ones_like(weight), eps=eps)

    return native.with_kernels(__name__, {WRONG_OPERATOR: rms_norm})
