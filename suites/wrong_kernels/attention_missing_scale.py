"""attention_prefill that forgets the 1/sqrt(head_dim) scale."""

from operators.backends import load_backend

WRONG_OPERATOR = "attention_prefill"
EXPECTED_REASON = "exceeds its budget"


def backend(device):
    native = load_backend("native", device)

    def attention_prefill(*, out, q, k, v, scale):
        native.kernel("attention_prefill")(out=out, q=q, k=k, v=v, scale=1.0)

    return native.with_kernels(__name__, {WRONG_OPERATOR: attention_prefill})
