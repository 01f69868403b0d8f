"""rms_norm with eps added after the square root: x / (sqrt(mean(x^2)) + eps)."""

from operators.backends import load_backend

WRONG_OPERATOR = "rms_norm"
EXPECTED_REASON = "exceeds its budget"


def rms_norm(*, out, x, weight, eps):
    hidden = x.float()
    hidden = hidden / (hidden.pow(2).mean(-1, keepdim=True).sqrt() + eps)
    out.copy_(hidden.to(x.dtype) * weight)


def backend(device):
    return load_backend("native", device).with_kernels(__name__, {WRONG_OPERATOR: rms_norm})
