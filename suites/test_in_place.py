"""Calls of the native library are out of place (kernels/include/qwen3_kernels.h): an output sharing
memory with another tensor of the call is refused with a KernelStrideError naming both, and nothing is
written. Every output laid over every other tensor of each operator's contract calls (each allowed
dtype combination), starting at, inside and before it; the same two laid apart in one buffer compute
what they compute apart, and so do the K and V halves of one cache, interleaved. These test the
built-in native library whatever `--backend` says."""

import pytest
import torch

from operators.backends import load_backend
from operators.core.kernel_errors import KernelStrideError
from operators.core.registry import OPERATOR_NAMES, get_spec
from suites.test_malformed_calls import allowed_combinations, contract_call

ALIGN = 16  # bytes: any element of the ABI's dtypes starts on it, and so do 16-byte vector accesses


def nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def in_one_buffer(placed: dict[str, tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One byte buffer holding a contiguous copy of each tensor at its byte offset ({name: (tensor, at)}),
    in the order given (a later one overwrites the bytes it shares with an earlier one)."""
    buffer = torch.zeros(aligned(max(at + nbytes(t) for t, at in placed.values())), dtype=torch.uint8,
                         device=next(iter(placed.values()))[0].device)
    views = {}
    for name, (tensor, at) in placed.items():
        views[name] = buffer[at:at + nbytes(tensor)].view(tensor.dtype).view(tensor.shape)
        views[name].copy_(tensor)
    return buffer, views


def pairs(spec, arguments):
    """(written, other) names: every output against every other tensor of the call that has bytes."""
    tensors = [n for n, t in arguments.items() if isinstance(t, torch.Tensor) and t.numel() > 0]
    return [(w, o) for w in spec.outputs for o in tensors if o != w and w in tensors]


def poisoned(tensor: torch.Tensor) -> torch.Tensor:
    return torch.full_like(tensor, float("nan") if tensor.is_floating_point() else -1)


def calls(operator, harness):
    spec = get_spec(operator)
    for dtypes in allowed_combinations(spec):
        case, arguments = contract_call(spec, dtypes, harness.device.torch_device())
        yield spec, {name: case.attributes[name] for name in spec.attributes}, arguments


def assert_refused_naming(call, written: str, other: str) -> None:
    with pytest.raises(KernelStrideError) as refused:
        call()
    message = str(refused.value)
    named = (f"output '{written}' shares memory with '{other}'", f"output '{other}' shares memory with '{written}'")
    assert any(words in message for words in named), message


@pytest.fixture(scope="module")
def native(harness):
    return load_backend("native", harness.device)


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_an_output_sharing_memory_with_another_tensor_is_refused_naming_both(native, harness, operator):
    kernel, checked = native.kernel(operator), 0
    for spec, attributes, arguments in calls(operator, harness):
        for written, other in pairs(spec, arguments):
            w, o = arguments[written].contiguous(), arguments[other].contiguous()
            for placed in ({other: (o, 0), written: (w, 0)},
                           {other: (o, 0), written: (w, nbytes(o) // 2 // ALIGN * ALIGN)},
                           {written: (w, 0), other: (o, nbytes(w) // 2 // ALIGN * ALIGN)}):
                buffer, views = in_one_buffer(placed)
                before = buffer.clone()
                assert_refused_naming(lambda: kernel.settled_call(**{**arguments, **views}, **attributes), written,
                                      other)
                assert torch.equal(buffer, before), f"{operator}: a refused call wrote into '{written}'"
                checked += 1
    assert checked > 0, f"{operator}: no output to lay over another tensor"


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_an_output_beside_another_tensor_in_one_buffer_computes_what_it_computes_apart(native, harness, operator):
    kernel = native.kernel(operator)
    for spec, attributes, arguments in calls(operator, harness):
        apart = {name: poisoned(arguments[name]) for name in spec.outputs}
        kernel.settled_call(**{**arguments, **apart}, **attributes)
        for written, other in pairs(spec, arguments):
            fresh = {**arguments, **{name: poisoned(arguments[name]) for name in spec.outputs}}
            o = fresh[other].contiguous()
            _, views = in_one_buffer({other: (o, 0), written: (fresh[written], aligned(nbytes(o)))})
            together = {**fresh, **views}
            kernel.settled_call(**together, **attributes)
            for name in spec.outputs:
                torch.testing.assert_close(together[name], apart[name], equal_nan=True,
                                           msg=lambda m: f"{operator} ({written} beside {other}): {m}")


def halves_of_one_cache(cache: torch.Tensor, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """K and V of the cache's shape as the two halves of one buffer [..., 2, D], interleaved row by
    row; V `shift` elements further on."""
    pair = torch.zeros(*cache.shape[:-1], 2, cache.shape[-1], dtype=cache.dtype, device=cache.device)
    k = pair[..., 0, :]
    return k, pair.as_strided(k.shape, k.stride(), k.storage_offset() + cache.shape[-1] + shift)


@pytest.mark.parametrize("operator", ["kv_cache_write", "kv_cache_write_paged"])
def test_the_k_and_v_halves_of_one_cache_are_apart_one_element_off_they_are_not(native, harness, operator):
    kernel = native.kernel(operator)
    for spec, attributes, arguments in calls(operator, harness):
        k_cache, v_cache = halves_of_one_cache(arguments["k_cache"])
        assert k_cache.data_ptr() < v_cache.data_ptr() < k_cache[-1].data_ptr(), "the halves' spans must meet"
        kernel.settled_call(**{**arguments, "k_cache": k_cache, "v_cache": v_cache}, **attributes)
        kernel.settled_call(**arguments, **attributes)
        assert torch.equal(k_cache, arguments["k_cache"]) and torch.equal(v_cache, arguments["v_cache"])
        k_cache, v_cache = halves_of_one_cache(arguments["k_cache"], shift=-1)
        assert_refused_naming(lambda: kernel.settled_call(**{**arguments, "k_cache": k_cache, "v_cache": v_cache},
                                                          **attributes), "k_cache", "v_cache")
