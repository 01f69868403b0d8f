"""Malformed calls of the native library: a call of the dtype contract with one or two of its tensors
bent (transposed, cut short, a dimension more or fewer, every other element, another dtype, a
zero-stride view, emptied, its integer values pushed far out of range). Each call either computes or
is refused by a typed error naming what is wrong (dtype, shape, stride, value, unsupported): never
another exception, a failed launch (on a GPU, a kernel that faulted) or a crash. On the CPU every
tensor of the call sits before an inaccessible page (and after one), so a call that is accepted but
reads or writes past a tensor crashes the test instead of passing. These test the built-in native
library whatever `--backend` says."""

import pytest
import torch
from hypothesis import given, strategies as st

from operators.backends import load_backend
from operators.core.checker import build_inputs
from operators.core.guard_pages import guarded_empty
from operators.core.kernel_errors import (KernelDTypeError, KernelShapeError, KernelStrideError,
                                          KernelUnsupportedError, KernelValueError)
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.strategies import all_combos

BENDS = ("transpose", "shorter", "extra_dim", "flatten", "every_other", "dtype", "zero_stride", "empty",
         "far_values")
REFUSALS = (KernelDTypeError, KernelShapeError, KernelStrideError, KernelValueError, KernelUnsupportedError)
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.float64, torch.uint8, torch.bool)


def bend(tensor: torch.Tensor, how: str, dtype: torch.dtype, shift: int) -> torch.Tensor:
    """The tensor bent one way; unchanged where that way does not apply to it."""
    if how == "transpose" and tensor.dim() >= 2:
        return tensor.transpose(0, 1)
    if how == "shorter" and tensor.dim() >= 1 and tensor.shape[0] > 1:
        return tensor[:-1]
    if how == "extra_dim":
        return tensor.unsqueeze(0)
    if how == "flatten" and tensor.dim() >= 2:
        return tensor.flatten()
    if how == "every_other" and tensor.dim() >= 1 and tensor.shape[-1] > 1:
        return tensor[..., ::2]
    if how == "dtype":
        return tensor.to(dtype)
    if how == "zero_stride" and tensor.dim() >= 1:
        return tensor[:1].expand(3, *tensor.shape[1:])
    if how == "empty" and tensor.dim() >= 1:
        return tensor[:0]
    if how == "far_values" and not tensor.is_floating_point():
        return tensor + shift
    return tensor


def guarded(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of the CPU tensor with its shape and strides, in a buffer between inaccessible pages."""
    extent = 1 + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())) if tensor.numel() else 0
    buffer = guarded_empty(extent, tensor.dtype)
    if extent:
        buffer[:extent].copy_(tensor.as_strided((extent,), (1,), tensor.storage_offset()))
    return buffer.as_strided(tensor.shape, tensor.stride())


@pytest.fixture(scope="module")
def native(harness):
    return load_backend("native", harness.device)


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
@given(data=st.data())
def test_a_malformed_call_computes_or_raises_a_typed_error(native, harness, operator, data):
    spec = get_spec(operator)
    kernel = native.kernel(operator)
    device = harness.device.torch_device()
    dtypes = data.draw(st.sampled_from([combo for combo in all_combos(spec.dtype_options) if spec.allows(combo)]),
                       label="dtypes")
    case = spec.contract_case(dtypes)
    arguments = {name: placed.view for name, placed in build_inputs(spec, case, device).items()}
    arguments |= {name: torch.zeros(case.outputs[name].shape, dtype=case.outputs[name].dtype.torch, device=device)
                  for name in spec.outputs}
    bent = data.draw(st.lists(st.sampled_from(sorted(arguments)), min_size=1, max_size=2, unique=True), label="bent")
    for name in bent:
        how = data.draw(st.sampled_from(BENDS), label=f"{name} bent by")
        dtype = data.draw(st.sampled_from(DTYPES), label=f"{name} dtype")
        shift = data.draw(st.sampled_from([-(2 ** 31), -5, 10 ** 6, 2 ** 40]), label=f"{name} shift")
        arguments[name] = bend(arguments[name], how, dtype, shift)
    if device.type == "cpu":
        arguments = {name: guarded(tensor) if isinstance(tensor, torch.Tensor) else tensor
                     for name, tensor in arguments.items()}
    try:
        kernel.settled_call(**arguments, **{name: case.attributes[name] for name in spec.attributes})
    except REFUSALS:
        pass
