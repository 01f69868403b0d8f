"""linear that treats every tensor as contiguous, whatever its strides say."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "linear"
EXPECTED_REASON = "left unwritten"


def as_if_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    return torch.as_strided(tensor, tensor.shape, torch.empty(tensor.shape).stride(), tensor.storage_offset())


def backend(device):
    native = load_backend("native", device)

    def linear(*, out, x, weight, bias=None):
        native.kernel("linear")(out=as_if_contiguous(out), x=as_if_contiguous(x), weight=as_if_contiguous(weight),
                                bias=bias)

    return native.with_kernels(__name__, {WRONG_OPERATOR: linear})
