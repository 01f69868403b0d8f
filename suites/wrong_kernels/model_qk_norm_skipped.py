"""The per-head q/k norm skipped: rms_norm on [tokens, heads, head_dim] copies x through (the hidden-size
norm on [tokens, hidden] still runs). Caught by the model integration run, at layer 0 q_norm."""

from operators.backends import load_backend

WRONG_OPERATOR = "rms_norm"
EXPECTED_LAYER = 0
EXPECTED_POINTS = ("q_norm", "k_norm")


def backend(device):
    native = load_backend("native", device)

    def rms_norm(*, out, x, weight, eps):
        if x.dim() == 3:
            out.copy_(x)
        else:
            native.kernel("rms_norm")(out=out, x=x, weight=weight, eps=eps)

    return native.with_kernels(__name__, {WRONG_OPERATOR: rms_norm})
