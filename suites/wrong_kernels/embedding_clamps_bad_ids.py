"""embedding that clamps ids into the vocabulary instead of refusing the ones outside it: every
valid case is right, and a corrupted id silently reads a real row."""

from operators.backends import load_backend

WRONG_OPERATOR = "embedding"
EXPECTED_REASON = "accepted a value outside the contract"


def backend(device):
    native = load_backend("native", device)

    def embedding(*, out, ids, weight):
        native.kernel("embedding")(out=out, ids=ids.clamp(0, weight.shape[0] - 1), weight=weight)

    return native.with_kernels(__name__, {WRONG_OPERATOR: embedding})
