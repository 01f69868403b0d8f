"""Judgements of the panel, counted per member x operator x dtype x regime, and what they mean:
false alarms (a correct member failed), misses (a wrong kernel passed a whole seed)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from operators.panel.members import Role
from operators.core.result import CaseResult, Verdict

DETAILS_KEPT = 50  # failing cases kept in full per member (the rest are counted)


@dataclass(frozen=True)
class Judgement:
    member: str
    role: Role
    run_seed: int  # the seed of the case draws (each case holds its own value seed)
    result: CaseResult

    @property
    def key(self) -> tuple[str, str, str, str]:
        case = self.result.case
        return self.member, case.operator, case.dtype.short, case.regime.value


def count_groups(judgements: Iterable[Judgement]) -> list[dict[str, Any]]:
    groups: dict[tuple, dict[str, Any]] = {}
    for j in judgements:
        row = groups.setdefault(j.key, {"member": j.key[0], "role": j.role.value, "operator": j.key[1],
                                        "dtype": j.key[2], "regime": j.key[3], "cases": 0, "passed": 0,
                                        "failed": 0, "unsupported": 0, "max_budget_use": None,
                                        "seconds": 0.0})
        row["cases"] += 1
        row["seconds"] += j.result.seconds
        row[{Verdict.PASS: "passed", Verdict.FAIL: "failed", Verdict.UNSUPPORTED: "unsupported"}[j.result.verdict]] += 1
        use = j.result.max_budget_use
        if use is not None and j.result.verdict is not Verdict.UNSUPPORTED:
            row["max_budget_use"] = max(use, row["max_budget_use"] or 0.0)
    return sorted(groups.values(), key=lambda r: (r["role"], r["member"], r["operator"], r["dtype"], r["regime"]))


def detail(j: Judgement) -> dict[str, Any]:
    result = j.result
    return {"member": j.member, "operator": result.case.operator, "dtype": result.case.dtype.short,
            "dtype_combination": result.case.dtype_label(), "regime": result.case.regime.value,
            "run_seed": j.run_seed, "seed": result.case.seed, "budget_use": result.max_budget_use, "reasons": list(result.reasons),
            "case": result.case.to_json(), "repro": result.repro}


def failures_of(judgements: Iterable[Judgement], role: Role) -> list[dict[str, Any]]:
    kept: dict[str, int] = defaultdict(int)
    details = []
    for j in judgements:
        if j.role is role and j.result.verdict is Verdict.FAIL and kept[j.member] < DETAILS_KEPT:
            kept[j.member] += 1
            details.append(detail(j))
    return details


def unsupported_reasons(judgements: Iterable[Judgement]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for j in judgements:
        if j.result.verdict is Verdict.UNSUPPORTED:
            counts[(j.member, j.result.case.operator, j.result.reasons[0] if j.result.reasons else "")] += 1
    return [{"member": m, "operator": op, "reason": reason, "cases": n} for (m, op, reason), n in sorted(counts.items())]


def wrong_kernel_rows(judgements: Iterable[Judgement], expected: dict[str, str],
                      contract: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per wrong kernel: the seeds at which it failed at least one case (every seed when its dtype
    contract check failed for the planted reason: that check draws nothing; the Python wrong kernels
    enforce no contract, so a contract failure for another reason is not a catch), its failing
    share, and its budget use (the error over its limit: above 1 fails; how far from passing)."""
    rows: dict[str, dict[str, Any]] = {}
    for j in judgements:
        if j.role is not Role.WRONG:
            continue
        row = rows.setdefault(j.member, {"member": j.member, "operator": j.result.case.operator, "cases": 0,
                                         "failed": 0, "caught_seeds": set(), "judged_seeds": set(),
                                         "max_budget_use": None,
                                         "expected_reason": expected.get(j.member, ""), "expected_reason_seen": False})
        row["cases"] += 1
        row["judged_seeds"].add(j.run_seed)
        if j.result.verdict is Verdict.FAIL:
            row["failed"] += 1
            row["caught_seeds"].add(j.run_seed)
            row["expected_reason_seen"] |= any(row["expected_reason"] in r for r in j.result.reasons)
        if j.result.max_budget_use is not None:
            row["max_budget_use"] = max(j.result.max_budget_use, row["max_budget_use"] or 0.0)
    for row in rows.values():
        broken = contract.get(row["member"], [])
        planted = any(row["expected_reason"] in detail for detail in broken)
        row["contract_failures"] = len(broken)
        row["expected_reason_seen"] |= planted
        judged = row.pop("judged_seeds")  # all of `seeds` once a run is complete
        row["seeds"] = len(judged)
        row["caught_seeds"] = len(judged) if planted else len(row["caught_seeds"])
    return sorted(rows.values(), key=lambda r: r["member"])
