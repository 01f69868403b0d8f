"""rope with the Llama-2 base 1e4 whatever theta Qwen3 asks for (1e6). Caught by the model integration run,
at layer 0 rope_q."""

from operators.backends import load_backend

WRONG_OPERATOR = "rope"
EXPECTED_LAYER = 0
EXPECTED_POINTS = ("rope_q", "rope_k")


def backend(device):
    native = load_backend("native", device)

    def rope(*, out, x, positions, theta, layout):
        native.kernel("rope")(out=out, x=x, positions=positions, theta=1e4, layout=layout)

    return native.with_kernels(__name__, {WRONG_OPERATOR: rope})
