"""swiglu that never writes the last element (a tail loop that stops one short)."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "swiglu"
EXPECTED_REASON = "left unwritten"


def backend(device):
    native = load_backend("native", device)

    def swiglu(*, out, gate, up):
        full = torch.empty_like(out)
        native.kernel("swiglu")(out=full, gate=gate, up=up)
        last = (-1,) * out.dim()
        kept = out[last].clone()
        out.copy_(full)
        out[last] = kept

    return native.with_kernels(__name__, {WRONG_OPERATOR: swiglu})
