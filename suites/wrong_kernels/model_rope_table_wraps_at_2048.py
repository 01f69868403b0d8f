"""rope from a cos/sin table of 2048 positions, indexed modulo its length: right for every position
below 2048, and a short integration prompt never gets there."""

from operators.backends import load_backend

WRONG_OPERATOR = "rope"
EXPECTED_REASON = "exceeds its budget"
TABLE_POSITIONS = 2048


def backend(device):
    native = load_backend("native", device)

    def rope(*, out, x, positions, theta, layout):
        native.kernel("rope")(out=out, x=x, positions=positions % TABLE_POSITIONS, theta=theta, layout=layout)

    return native.with_kernels(__name__, {WRONG_OPERATOR: rope})
