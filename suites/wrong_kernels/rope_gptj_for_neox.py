"""rope with the layouts swapped: GPT-J pairs where NeoX halves are asked for, and back."""

from operators.backends import load_backend

WRONG_OPERATOR = "rope"
EXPECTED_REASON = "exceeds its budget"
SWAPPED = {"neox": "gptj", "gptj": "neox"}


def backend(device):
    native = load_backend("native", device)

    def rope(*, out, x, positions, theta, layout):
        native.kernel("rope")(out=out, x=x, positions=positions, theta=theta, layout=SWAPPED[layout])

    return native.with_kernels(__name__, {WRONG_OPERATOR: rope})
