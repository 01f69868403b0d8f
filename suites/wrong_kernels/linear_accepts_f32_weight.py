"""linear that silently promotes: an f32 weight with f16/bf16 activations is computed, not rejected."""

from operators.backends import load_backend

WRONG_OPERATOR = "linear"
EXPECTED_REASON = "accepted a combination outside the contract"


def backend(device):
    native = load_backend("native", device)

    def linear(*, out, x, weight, bias=None):
        if weight.dtype != x.dtype:
            weight = weight.to(x.dtype)
        native.kernel("linear")(out=out, x=x, weight=weight, bias=bias)

    return native.with_kernels(__name__, {WRONG_OPERATOR: linear})
