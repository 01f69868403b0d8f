"""float32 linear whose products take TF32 inputs (10 mantissa bits, as cuBLAS and Triton do when
TF32 is allowed): fast on tensor cores, and 1000x the error of a float32 GEMM."""

import torch

from operators.backends import load_backend

WRONG_OPERATOR = "linear"
EXPECTED_REASON = "exceeds its budget"
TF32_DROPPED_BITS = 13  # float32 keeps 23 mantissa bits, TF32 10


def to_tf32(tensor: torch.Tensor) -> torch.Tensor:
    """Round float32 values to the nearest TF32 value (ties away from zero), kept in float32."""
    bits = tensor.contiguous().view(torch.int32)
    half, mask = 1 << (TF32_DROPPED_BITS - 1), ~((1 << TF32_DROPPED_BITS) - 1)
    return ((bits + half) & mask).view(torch.float32)


def backend(device):
    native = load_backend("native", device)

    def linear(*, out, x, weight, bias=None):
        if x.dtype != torch.float32 or weight.dtype != torch.float32:
            return native.kernel("linear")(out=out, x=x, weight=weight, bias=bias)
        result = to_tf32(x) @ to_tf32(weight).T
        out.copy_(result if bias is None else result + bias)

    return native.with_kernels(__name__, {WRONG_OPERATOR: linear})
