"""Proof that native means native: the C library runs and PyTorch computes nothing during the call."""

import pytest
from torch.utils._python_dispatch import TorchDispatchMode

from operators.backends import load_backend
from operators.core.checker import build_inputs, check_case
from operators.core.placement import place_poisoned_output
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.strategies import allowed_combos
from operators.core.dtypes import DType


class RecordTorchOps(TorchDispatchMode):
    """Records every ATen operator dispatched while active (metadata reads are not operators)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def torch_ops_during_call(backend, operator, device):
    spec = get_spec(operator)
    case = spec.contract_case(allowed_combos(spec, DType.BF16)[0])
    inputs = build_inputs(spec, case, device.torch_device())
    outputs = {n: place_poisoned_output(case.outputs[n], device.torch_device()) for n in spec.outputs}
    arguments = {**{n: p.view for n, p in outputs.items()}, **{n: p.view for n, p in inputs.items()},
                 **{a: case.attributes[a] for a in spec.attributes}}
    with RecordTorchOps() as recorder:
        backend.kernel(operator)(**arguments)
    return recorder.ops


@pytest.fixture(scope="module")
def native(harness):
    return load_backend("native", harness.device)


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_native_call_runs_no_torch_operator(harness, native, operator):
    assert torch_ops_during_call(native, operator, harness.device) == []


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_recorder_sees_a_torch_fallback(harness, operator):
    """The instrument itself works: the torch control, which is PyTorch, is seen computing."""
    assert torch_ops_during_call(load_backend("torch", harness.device), operator, harness.device)


@pytest.mark.parametrize("operator", OPERATOR_NAMES)
def test_case_records_the_native_symbol_that_ran(harness, native, operator):
    spec = get_spec(operator)
    case = spec.contract_case(allowed_combos(spec, DType.F16)[0])
    result = check_case(spec, case, native.kernel(operator), harness.device, native.name)
    assert result.passed, result.describe_failure()
    assert result.implementation["kind"] == "native"
    assert result.implementation["symbol"] == f"q3_{operator}"
    assert result.implementation["calls"] == 1
    assert result.implementation["build_hash"] in result.implementation["library"]
