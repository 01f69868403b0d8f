"""Malformed calls of the native library: a call of the dtype contract with tensors bent (transposed,
cut short, a dimension more or fewer, every other element, another dtype, a zero-stride view,
emptied, its integer values pushed far out of range). Every bend of every tensor of every allowed
dtype combination, one at a time, and two bent at once drawn by Hypothesis. Each call either computes
or is refused by a typed error naming what is wrong (dtype, shape, stride, value, unsupported): never
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
from operators.core.placement import storage_extent
from operators.core.kernel_errors import (KernelDTypeError, KernelShapeError, KernelStrideError,
                                          KernelUnsupportedError, KernelValueError)
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.strategies import all_combos

SHIFTS = (-(2 ** 31), -5, 10 ** 6, 2 ** 40)
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.float64, torch.uint8, torch.bool)
# (how, parameter): every way a tensor is bent.
BENDS = (*[(how, None) for how in ("transpose", "shorter", "extra_dim", "flatten", "every_other", "zero_stride",
                                    "empty")],
         *[("dtype", dtype) for dtype in DTYPES], *[("far_values", shift) for shift in SHIFTS])
REFUSALS = (KernelDTypeError, KernelShapeError, KernelStrideError, KernelValueError, KernelUnsupportedError)


def bend(tensor: torch.Tensor, how: str, parameter) -> torch.Tensor:
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
        return tensor.to(parameter)
    if how == "zero_stride" and tensor.dim() >= 1:
        return tensor[:1].expand(3, *tensor.shape[1:])
    if how == "empty" and tensor.dim() >= 1:
        return tensor[:0]
    if how == "far_values" and not tensor.is_floating_point():
        return tensor + parameter
    return tensor


def guarded(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of the CPU tensor with its shape and strides, in a buffer between inaccessible pages."""
    extent = storage_extent(tensor.shape, tensor.stride())
    buffer = guarded_empty(extent, tensor.dtype)
    if extent:
        buffer[:extent].copy_(tensor.as_strided((extent,), (1,), tensor.storage_offset()))
    return buffer.as_strided(tensor.shape, tensor.stride())


@pytest.fixture(scope="module")
def native(harness):
    return load_backend("native", harness.device)


def allowed_combinations(spec):
    return [combo for combo in all_combos(spec.dtype_options) if spec.allows(combo)]


def contract_call(spec, dtypes, device):
    """The contract case of these dtypes and its arguments (outputs zeroed) on the device."""
    case = spec.contract_case(dtypes)
    arguments = {name: placed.view for name, placed in build_inputs(spec, case, device).items()}
    arguments |= {name: torch.zeros(case.outputs[name].shape, dtype=case.outputs[name].dtype.torch, device=device)
                  for name in spec.outputs}
    return case, arguments


def call_bent(kernel, spec, case, arguments, bends) -> str | None:
    """Call with the named tensors bent ({name: (how, parameter)}), on the CPU every tensor guarded; None
    when the call computed or was refused, else what went wrong."""
    arguments = {name: bend(tensor, *bends[name]) if name in bends else tensor for name, tensor in arguments.items()}
    arguments = {name: guarded(tensor) if isinstance(tensor, torch.Tensor) and tensor.device.type == "cpu" else tensor
                 for name, tensor in arguments.items()}
    try:
        kernel.settled_call(**arguments, **{name: case.attributes[name] for name in spec.attributes})
    except REFUSALS:
        pass
    except Exception as error:  # noqa: BLE001 - every other outcome is the failure this test reports
        return f"{bends}: {type(error).__name__}: {error}"
    return None


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_every_single_bend_computes_or_is_refused(native, harness, operator):
    """Every dtype combination of the contract x every tensor x every bend, one tensor at a time."""
    spec, kernel = get_spec(operator), native.kernel(operator)
    problems, calls = [], 0
    for dtypes in allowed_combinations(spec):
        case, arguments = contract_call(spec, dtypes, harness.device.torch_device())
        for name in arguments:
            for how in BENDS:
                problem = call_bent(kernel, spec, case, arguments, {name: how})
                problems += [f"{dtypes} {problem}"] if problem else []
                calls += 1
    assert calls > 0 and problems == []


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
@given(data=st.data())
def test_two_bent_tensors_compute_or_are_refused(native, harness, operator, data):
    spec, kernel = get_spec(operator), native.kernel(operator)
    dtypes = data.draw(st.sampled_from(allowed_combinations(spec)), label="dtypes")
    case, arguments = contract_call(spec, dtypes, harness.device.torch_device())
    names = data.draw(st.lists(st.sampled_from(sorted(arguments)), min_size=2, max_size=2, unique=True), label="bent")
    bends = {name: data.draw(st.sampled_from(BENDS), label=f"{name} bent by") for name in names}
    problem = call_bent(kernel, spec, case, arguments, bends)
    assert problem is None, f"{dtypes} {problem}"
