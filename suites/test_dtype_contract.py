"""The dtype contract, float-vs-Half included: every combination of dtypes of every operator.

Allowed combinations are computed within budget (the harness allocates outputs in the contract's
dtype); disallowed ones raise KernelDTypeError and leave outputs and inputs untouched."""

import pytest

from operators.core.contract import check_combination, label
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.strategies import all_combos

pytestmark = pytest.mark.backend_under_test

COMBINATIONS = [(name, combo) for name in OPERATOR_NAMES for combo in all_combos(get_spec(name).dtype_options)]


@pytest.mark.parametrize("operator, dtypes", COMBINATIONS,
                         ids=[f"{name}[{label(combo)}]" for name, combo in COMBINATIONS])
def test_dtype_contract(harness, operator, dtypes):
    spec = get_spec(operator)
    kernel = harness.backend.kernel(operator)
    if kernel is None:
        pytest.skip(f"backend '{harness.backend.name}' has no kernel for '{operator}'")
    result = check_combination(spec, dtypes, kernel, harness.device, harness.backend.name)
    assert result.passed, f"{operator} [{result.combination}] ({'allowed' if result.allowed else 'disallowed'}): {result.detail}"


def test_a_kernel_that_never_rejects_is_told_it_accepted_not_that_a_rejected_call_wrote(harness):
    """A swiglu that computes whatever dtypes it is given fails the disallowed combinations with
    "accepted a combination outside the contract", and nothing about a rejected call."""
    import torch.nn.functional as F

    from operators.core.kernel import Kernel

    def swiglu(*, out, gate, up):
        out.copy_(F.silu(gate.float()) * up.float())

    spec = get_spec("swiglu")
    results = [check_combination(spec, combo, Kernel("swiglu", swiglu), harness.device, "accepting")
               for combo in all_combos(spec.dtype_options)]
    refused = [r for r in results if not r.allowed]
    assert refused and all(not r.passed and r.detail == "accepted a combination outside the contract" for r in refused)
