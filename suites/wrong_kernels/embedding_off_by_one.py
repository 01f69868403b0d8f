"""embedding that gathers row id - 1 (wrapping to the last row for id 0)."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "embedding"
EXPECTED_REASON = "exceeds its budget"


def backend(device):
    native = load_backend("native", device)

    def embedding(*, out, ids, weight):
        shifted = torch.remainder(ids - 1, weight.shape[0]).to(ids.dtype)
        native.kernel("embedding")(out=out, ids=shifted, weight=weight)

    return native.with_kernels(__name__, {WRONG_OPERATOR: embedding})
