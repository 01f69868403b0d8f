"""The self-tests' judging: each operator's cases are drawn, and their reference and baselines computed,
once; the torch control and every wrong kernel of the operator are then judged on each (as operators.panel
does), one prepared case in memory at a time. A wrong kernel stops being run once it has failed with its
expected reason, since its test asks only that it does; the control is judged on every case."""

from __future__ import annotations

from dataclasses import dataclass

from operators.core.checker import prepare_case, run_kernel
from operators.core.contract import check_contract
from operators.core.device import Device
from operators.core.drawing import draw_cases
from operators.core.dtypes import FLOAT_DTYPES
from operators.core.kernel import Kernel
from operators.core.registry import get_spec


@dataclass(frozen=True)
class Implementation:
    name: str
    kernel: Kernel
    backend: str
    expected_reason: str | None  # a wrong kernel's; None for one that must pass everything


def judge_operator(operator: str, implementations: list[Implementation], device: Device, examples: int,
                   seed: int = 0) -> dict[str, list[str]]:
    """Each implementation's failure reasons over `examples` cases per float dtype, then its dtype contract."""
    spec = get_spec(operator)
    reasons: dict[str, list[str]] = {i.name: [] for i in implementations}

    def still_judged(implementation: Implementation) -> bool:
        expected = implementation.expected_reason
        return expected is None or not any(expected in reason for reason in reasons[implementation.name])

    for dtype in FLOAT_DTYPES:
        for case in draw_cases(spec, device, dtype, examples, seed=seed):
            pending = [i for i in implementations if still_judged(i)]
            if not pending:
                return reasons
            prepared = prepare_case(spec, case, device)
            for implementation in pending:
                reasons[implementation.name] += run_kernel(prepared, implementation.kernel,
                                                           implementation.backend).reasons
    for implementation in filter(still_judged, implementations):
        reasons[implementation.name] += [check.detail for check in check_contract(
            spec, implementation.kernel, device, implementation.backend) if not check.passed]
    return reasons
