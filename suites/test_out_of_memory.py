"""A kernel out of device memory during a case: its scratch comes from outside PyTorch's cache, so
the case runs once more after that cache is released; out of memory again, the error propagates
(the machine's limit, never a verdict on the kernel)."""

import weakref

import pytest
import torch

from operators.backends import KernelOutOfMemoryError, load_backend
from operators.core import checker, device as device_module
from operators.core.device import Device, release_cached_memory
from operators.core.dtypes import DType
from operators.core.kernel import Kernel
from operators.core.registry import get_spec
from operators.core.strategies import allowed_combos


def starving(failures: int) -> tuple[Kernel, list[list[weakref.ref]]]:
    """swiglu out of memory on its first `failures` calls, PyTorch's swiglu after; the weak
    references of each call's tensors (and the buffers they view)."""
    control = load_backend("torch", Device.CPU).kernel("swiglu")
    calls: list[list[weakref.ref]] = []

    def call(**arguments):
        tensors = [t for t in arguments.values() if isinstance(t, torch.Tensor)]
        calls.append([weakref.ref(t) for t in tensors] + [weakref.ref(t._base) for t in tensors if t._base is not None])
        if len(calls) <= failures:
            raise KernelOutOfMemoryError("swiglu", "cannot allocate 805577744 bytes of scratch")
        control(**arguments)

    return Kernel("swiglu", call), calls


def swiglu_case():
    spec = get_spec("swiglu")
    return checker.prepare_case(spec, spec.contract_case(allowed_combos(spec, DType.F32)[0]), Device.CPU)


def test_out_of_memory_once_the_case_runs_again_after_the_cache_is_released(monkeypatch):
    kernel, calls = starving(failures=1)
    released = []

    def release(device):
        released.append([ref() is None for ref in calls[0]])

    monkeypatch.setattr(device_module, "release_cached_memory", release)
    result = checker.run_kernel(swiglu_case(), kernel, "starving")
    assert result.passed, result.reasons
    assert result.implementation["retried_out_of_memory"] is True, "the retry leaves no trace in the report"
    assert len(calls) == 2 and len(released) == 1
    assert all(released[0]), "the failed attempt's tensors were still alive when the cache was released"


def test_out_of_memory_twice_is_the_machines_limit_not_a_failed_case():
    kernel, calls = starving(failures=2)
    with pytest.raises(KernelOutOfMemoryError, match="805577744 bytes"):
        checker.run_kernel(swiglu_case(), kernel, "starving")
    assert len(calls) == 2


def test_releasing_empties_the_cuda_cache_only_on_a_cuda_device(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    release_cached_memory(torch.device("cpu"))
    assert emptied == []
    release_cached_memory(torch.device("cuda"))
    assert emptied == [True]


def test_a_case_that_did_not_run_out_of_memory_says_nothing_of_a_retry():
    kernel, calls = starving(failures=0)
    result = checker.run_kernel(swiglu_case(), kernel, "starving")
    assert result.passed and len(calls) == 1 and "retried_out_of_memory" not in result.implementation
