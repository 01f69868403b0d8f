"""CaseResult: the immutable record of one checked case, as the report stores it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from operators.core.budget import Budget
from operators.core.case import Case
from operators.core.device import Device
from operators.core.dtypes import DType
from operators.core.kernel import Kernel
from operators.core.metrics import BudgetCheck, ErrorMetrics
from operators.core.placement import strides_for


class Verdict(Enum):
    PASS = "pass"
    FAIL = "fail"
    UNSUPPORTED = "unsupported"  # the implementation cleanly refused a case (KernelUnsupportedError)


@dataclass(frozen=True)
class OutputResult:
    name: str
    dtype: DType
    metrics: ErrorMetrics
    baselines: Mapping[str, ErrorMetrics]  # the correct same-dtype computations, Hugging Face's first
    checks: tuple[BudgetCheck, ...]

    @property
    def baseline(self) -> ErrorMetrics:
        """Hugging Face's computation in the working dtype."""
        return next(iter(self.baselines.values()))

    @property
    def error_ratio(self) -> float | None:
        """The largest e(out, ref) / e(base, ref) over the budgeted measures."""
        ratios = [c.ratio for c in self.checks]
        if any(r is None for r in ratios):
            return None
        return max(ratios, default=0.0)

    @property
    def budget_use(self) -> float:
        """The largest e(out, ref) / limit over the budgeted measures: above 1 fails."""
        return max((c.value / c.limit if c.limit > 0 else (0.0 if c.value == 0 else float("inf"))
                    for c in self.checks), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype.value,
            "metrics": {**self.metrics.to_json(), "error_ratio": self.error_ratio, "budget_use": self.budget_use},
            "baseline_metrics": self.baseline.to_json(),
            "ensemble": {name: {"max_abs": m.max_abs, "rel_l2": m.rel_l2} for name, m in self.baselines.items()},
            "budget_checks": [{"measure": c.measure, "value": c.value, "baseline": c.baseline,
                               "baseline_source": c.baseline_source, "limit": c.limit, "passed": c.passed}
                              for c in self.checks],
        }


def repro_command(case: Case, backend: str, device: Device) -> str:
    """The command that checks this one case again (a report row's: `replay_line`)."""
    return (f"python -m operators.run --device {device.value} --backend {shlex.quote(backend)} "
            f"--replay {shlex.quote(case.compact_json())}")


def replay_line(row: Mapping[str, Any]) -> str:
    """The replay command of a report's case row (schema 2: built from its case, backend and device;
    1.x stored it as `repro`)."""
    if "repro" in row:
        return row["repro"]
    return repro_command(Case.from_json(row["case"]), row["backend"], Device(row["device"]))


@dataclass(frozen=True)
class CaseResult:
    case: Case
    backend: str
    device: Device
    implementation: Mapping[str, Any]
    verdict: Verdict
    reasons: tuple[str, ...]
    outputs: tuple[OutputResult, ...]
    budget: Budget
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def repro(self) -> str:
        return repro_command(self.case, self.backend, self.device)

    @property
    def min_cosine(self) -> float | None:
        return min((o.metrics.cosine for o in self.outputs), default=None)

    @property
    def max_error_ratio(self) -> float | None:
        ratios = [o.error_ratio for o in self.outputs if o.error_ratio is not None]
        return max(ratios, default=None)

    @property
    def max_budget_use(self) -> float | None:
        return max((o.budget_use for o in self.outputs), default=None)

    @property
    def max_ulp(self) -> float | None:
        return max((o.metrics.ulp_max for o in self.outputs), default=None)

    def describe_failure(self) -> str:
        lines = [f"{self.case.operator} [{self.case.dtype_label()}] on {self.device.value} with backend "
                 f"'{self.backend}' failed (seed {self.case.seed}, regime {self.case.regime.value}):"]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines.append(f"  case: {self.case.compact_json()}")
        lines.append(f"  reproduce: {self.repro}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The case is stored once (`case`: shapes, dtypes, layouts, attributes, regime, seed); the
        replay line is `replay_line(row)`, the budget the document's `budgets[operator]`."""
        tensors = {**self.case.inputs, **self.case.outputs}
        return {
            "operator": self.case.operator,
            "backend": self.backend,
            "device": self.device.value,
            "implementation": dict(self.implementation),
            "dtype_combination": self.case.dtype_label(),
            "case": self.case.to_json(),
            "strides": {n: list(strides_for(t.shape, t.layout)) for n, t in tensors.items()},
            "outputs": {o.name: o.to_json() for o in self.outputs},
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "seconds": round(self.seconds, 4),
        }


def ended_case(case: Case, kernel: Kernel, backend: str, device: Device, budget: Budget, reason: str) -> CaseResult:
    """The failed result of a case whose kernel call ended the process or ran past its time limit."""
    return CaseResult(case=case, backend=backend, device=device, implementation=kernel.implementation,
                      verdict=Verdict.FAIL, reasons=(reason,), outputs=(), budget=budget, seconds=0.0)
