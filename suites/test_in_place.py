"""Calls of the native library are out of place (kernels/include/qwen3_kernels.h): an output whose
bytes meet those of another tensor of the call is refused with a KernelStrideError naming both, and
nothing is written; the same two tensors laid apart in one buffer compute. Every written tensor
against every other tensor of each operator's contract call. These test the built-in native library
whatever `--backend` says."""

import pytest
import torch

from operators.backends import load_backend
from operators.core.kernel_errors import KernelStrideError
from operators.core.registry import OPERATOR_NAMES, get_spec
from suites.test_malformed_calls import allowed_combinations, contract_call

ALIGN = 16  # bytes: any element of the ABI's dtypes starts on it, and so do 16-byte vector accesses


def in_one_buffer(other: torch.Tensor, written: torch.Tensor, written_at: int) -> tuple[torch.Tensor, ...]:
    """One byte buffer holding a copy of `other` at byte 0 and an uninitialised `written` at byte
    `written_at`; the buffer and the two views."""
    other_bytes = other.numel() * other.element_size()
    size = max(other_bytes, written_at + written.numel() * written.element_size())
    buffer = torch.zeros(-(-size // ALIGN) * ALIGN, dtype=torch.uint8, device=other.device)
    other_view = buffer[:other_bytes].view(other.dtype).view(other.shape)
    other_view.copy_(other)
    written_view = buffer[written_at:written_at + written.numel() * written.element_size()]
    return buffer, other_view, written_view.view(written.dtype).view(written.shape)


def pairs(spec, arguments):
    """(written, other) names: every output against every other tensor of the call that has bytes."""
    tensors = [n for n, t in arguments.items() if isinstance(t, torch.Tensor) and t.numel() > 0]
    return [(w, o) for w in spec.outputs for o in tensors if o != w and w in tensors]


@pytest.fixture(scope="module")
def native(harness):
    return load_backend("native", harness.device)


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_an_output_sharing_memory_with_another_tensor_is_refused_naming_both(native, harness, operator):
    spec = get_spec(operator)
    case, arguments = contract_call(spec, allowed_combinations(spec)[0], harness.device.torch_device())
    attributes = {name: case.attributes[name] for name in spec.attributes}
    checked = 0
    for written, other in pairs(spec, arguments):
        other_bytes = arguments[other].numel() * arguments[other].element_size()
        for written_at in sorted({0, other_bytes // 2 // ALIGN * ALIGN}):
            buffer, other_view, written_view = in_one_buffer(arguments[other].contiguous(), arguments[written],
                                                             written_at)
            before = buffer.clone()
            with pytest.raises(KernelStrideError) as refused:
                native.kernel(operator).settled_call(**{**arguments, other: other_view, written: written_view},
                                                     **attributes)
            message = str(refused.value)
            named = {f"output '{written}' shares memory with '{other}'", f"output '{other}' shares memory with '{written}'"}
            assert any(words in message for words in named), message
            assert torch.equal(buffer, before), f"{operator}: a refused call wrote into '{written}'"
            checked += 1
    assert checked > 0, f"{operator}: no output to lay over another tensor"


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_an_output_beside_another_tensor_in_one_buffer_computes(native, harness, operator):
    spec = get_spec(operator)
    case, arguments = contract_call(spec, allowed_combinations(spec)[0], harness.device.torch_device())
    attributes = {name: case.attributes[name] for name in spec.attributes}
    for written, other in pairs(spec, arguments):
        other_bytes = arguments[other].numel() * arguments[other].element_size()
        _, other_view, written_view = in_one_buffer(arguments[other].contiguous(), arguments[written],
                                                    -(-other_bytes // ALIGN) * ALIGN)
        native.kernel(operator).settled_call(**{**arguments, other: other_view, written: written_view}, **attributes)
