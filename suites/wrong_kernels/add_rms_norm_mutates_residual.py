"""add_rms_norm that also writes the sum into its residual input (an undocumented in-place update)."""

from operators.backends import load_backend

WRONG_OPERATOR = "add_rms_norm"
EXPECTED_REASON = "input 'residual' was modified"


def backend(device):
    native = load_backend("native", device)

    def add_rms_norm(*, out, sum, x, residual, weight, eps):
        native.kernel("add_rms_norm")(out=out, sum=sum, x=x, residual=residual, weight=weight, eps=eps)
        residual.copy_(sum)

    return native.with_kernels(__name__, {WRONG_OPERATOR: add_rms_norm})
