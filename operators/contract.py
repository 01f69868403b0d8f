"""The dtype contract check: every combination of dtypes, allowed ones computed correctly,
disallowed ones rejected with KernelDTypeError and nothing written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from operators.checker import build_inputs, check_case, contract_reasons, synchronize
from operators.device import Device
from operators.dtypes import DType
from operators.kernel import Kernel
from operators.kernel_errors import KernelDTypeError, KernelError
from operators.placement import place_poisoned_output, poison_value
from operators.spec import OperatorSpec
from operators.strategies import all_combos


@dataclass(frozen=True)
class ContractResult:
    operator: str
    combination: str
    allowed: bool
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"operator": self.operator, "combination": self.combination, "allowed": self.allowed,
                "verdict": "pass" if self.passed else "fail", "detail": self.detail}


def label(dtypes: Mapping[str, DType]) -> str:
    return " ".join(f"{name}={dtype.short}" for name, dtype in dtypes.items())


def check_rejection(spec: OperatorSpec, dtypes: Mapping[str, DType], kernel: Kernel, device: Device) -> ContractResult:
    case = spec.contract_case(dtypes)
    target = device.torch_device()
    inputs = build_inputs(spec, case, target)
    snapshots = {name: placed.buffer.clone() for name, placed in inputs.items()}
    outputs = {name: place_poisoned_output(case.outputs[name], target) for name in spec.outputs}
    verdict = (False, "")
    try:
        kernel(**{n: p.view for n, p in outputs.items()}, **{n: p.view for n, p in inputs.items()},
               **{name: case.attributes[name] for name in spec.attributes})
        synchronize(target)
        verdict = (False, "accepted a combination outside the contract")
    except KernelDTypeError as error:
        verdict = (True, f"rejected: {error}")
    except KernelError as error:
        verdict = (False, f"rejected with {type(error).__name__} instead of KernelDTypeError: {error}")
    except Exception as error:
        verdict = (False, f"raised {type(error).__name__} instead of KernelDTypeError: {error}")
    untouched = [r for r in contract_reasons(inputs, snapshots, outputs) if "left unwritten" not in r]
    written = [name for name, placed in outputs.items()
               if bool((placed.bits(placed.view) != poison_value(placed.spec.dtype)).any())]
    problems = untouched + [f"output '{name}' was written by a rejected call" for name in written]
    passed, detail = verdict
    if problems:
        passed, detail = False, "; ".join([detail, *problems])
    return ContractResult(spec.name, label(dtypes), False, passed, detail)


def check_combination(spec: OperatorSpec, dtypes: Mapping[str, DType], kernel: Kernel, device: Device,
                      backend: str) -> ContractResult:
    if not spec.allows(dtypes):
        return check_rejection(spec, dtypes, kernel, device)
    outcome = check_case(spec, spec.contract_case(dtypes), kernel, device, backend)
    detail = "computed within budget" if outcome.passed else "; ".join(outcome.reasons)
    return ContractResult(spec.name, label(dtypes), True, outcome.passed, detail)


def check_contract(spec: OperatorSpec, kernel: Kernel, device: Device, backend: str) -> list[ContractResult]:
    return [check_combination(spec, dtypes, kernel, device, backend) for dtypes in all_combos(spec.dtype_options)]
