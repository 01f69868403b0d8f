"""The contract checks: every combination of dtypes, allowed ones computed correctly, disallowed
ones rejected with KernelDTypeError; every input value the contract excludes (an id past the
vocabulary, a slot written twice) rejected with KernelValueError naming the tensor. A rejected
call writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from operators.core.case import Case
from operators.core.checker import build_inputs, check_case, contract_reasons, synchronize
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.exits import is_out_of_memory
from operators.core.kernel import Kernel
from operators.core.kernel_errors import KernelDTypeError, KernelError, KernelValueError
from operators.core.placement import Placed, place_poisoned_output, poison_value
from operators.core.result import Verdict
from operators.core.spec import BadValue, OperatorSpec
from operators.core.strategies import all_combos


@dataclass(frozen=True)
class ContractResult:
    operator: str
    combination: str  # the dtypes of a dtype check; the tensor and value of a value check
    allowed: bool
    passed: bool
    detail: str
    kind: str = "dtype"  # "dtype": a dtype combination; "value": an input value outside the contract
    unsupported: bool = False  # an allowed combination the kernel cleanly refused (not a failure)

    @property
    def verdict(self) -> str:
        return "unsupported" if self.unsupported else "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, Any]:
        return {"operator": self.operator, "kind": self.kind, "combination": self.combination,
                "allowed": self.allowed, "verdict": self.verdict, "detail": self.detail}


def label(dtypes: Mapping[str, DType]) -> str:
    return " ".join(f"{name}={dtype.short}" for name, dtype in dtypes.items())


def refusal(spec: OperatorSpec, case: Case, inputs: dict[str, Placed], kernel: Kernel, device: Device,
            expected: type[KernelError], what: str | None, outside: str) -> tuple[bool, str]:
    """Whether the kernel refused the call with `expected` (a message naming tensor `what`, if any),
    leaving its inputs and poisoned outputs untouched; and the detail. `outside`: what the call
    holds that the contract excludes ("a combination", "a value")."""
    target = device.torch_device()
    snapshots = {name: placed.buffer.clone() for name, placed in inputs.items()}
    outputs = {name: place_poisoned_output(case.outputs[name], target) for name in spec.outputs}
    try:
        kernel.settled_call(**{n: p.view for n, p in outputs.items()}, **{n: p.view for n, p in inputs.items()},
                            **{name: case.attributes[name] for name in spec.attributes})
        synchronize(target)
        rejected, passed, detail = False, False, f"accepted {outside} outside the contract"
    except expected as error:
        named, rejected = what is None or f"'{what}'" in str(error), True
        passed, detail = named, (f"rejected: {error}" if named else f"rejected without naming '{what}': {error}")
    except Exception as error:
        if is_out_of_memory(error):
            raise
        kind = "rejected with" if isinstance(error, KernelError) else "raised"
        rejected, passed, detail = True, False, f"{kind} {type(error).__name__} instead of {expected.__name__}: {error}"
    untouched = [r for r in contract_reasons(inputs, snapshots, outputs) if "left unwritten" not in r]
    written = [name for name, placed in outputs.items()
               if rejected and bool((placed.bits(placed.view) != poison_value(placed.spec.dtype)).any())]
    problems = untouched + [f"output '{name}' was written by a rejected call" for name in written]
    return (False, "; ".join([detail, *problems])) if problems else (passed, detail)


def check_rejection(spec: OperatorSpec, dtypes: Mapping[str, DType], kernel: Kernel, device: Device) -> ContractResult:
    case = spec.contract_case(dtypes)
    inputs = build_inputs(spec, case, device.torch_device())
    passed, detail = refusal(spec, case, inputs, kernel, device, KernelDTypeError, None, "a combination")
    return ContractResult(spec.name, label(dtypes), False, passed, detail)


def check_bad_value(spec: OperatorSpec, bad: BadValue, kernel: Kernel, device: Device) -> ContractResult:
    """The contract case in the first allowed dtypes, with one input element set to `bad`."""
    dtypes = next(combo for combo in all_combos(spec.dtype_options) if spec.allows(combo))
    case = spec.contract_case(dtypes)
    inputs = build_inputs(spec, case, device.torch_device())
    index, value = bad.place({name: placed.view for name, placed in inputs.items()}, case)
    inputs[bad.tensor].view[index] = value
    passed, detail = refusal(spec, case, inputs, kernel, device, KernelValueError, bad.tensor, "a value")
    shown = f"{bad.tensor}{list(index)} = {value:g}: {bad.what}"
    return ContractResult(spec.name, shown, False, passed, detail, kind="value")


def check_combination(spec: OperatorSpec, dtypes: Mapping[str, DType], kernel: Kernel, device: Device,
                      backend: str) -> ContractResult:
    if not spec.allows(dtypes):
        return check_rejection(spec, dtypes, kernel, device)
    outcome = check_case(spec, spec.contract_case(dtypes), kernel, device, backend)
    if outcome.verdict is Verdict.UNSUPPORTED:
        return ContractResult(spec.name, label(dtypes), True, True, "; ".join(outcome.reasons), unsupported=True)
    detail = "computed within budget" if outcome.passed else "; ".join(outcome.reasons)
    return ContractResult(spec.name, label(dtypes), True, outcome.passed, detail)


def check_contract(spec: OperatorSpec, kernel: Kernel, device: Device, backend: str) -> list[ContractResult]:
    """Every dtype combination, then every value outside the contract."""
    return ([check_combination(spec, dtypes, kernel, device, backend) for dtypes in all_combos(spec.dtype_options)]
            + [check_bad_value(spec, bad, kernel, device) for bad in spec.bad_values])
