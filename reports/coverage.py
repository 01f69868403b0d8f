"""What a run's cases covered, per operator: the block/tile boundary classes
(operators/core/boundaries.py) and the value regimes, and any boundary class the operator reaches on
the device that no case hit."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping

from tabulate import tabulate

from operators.core.boundaries import coverage
from operators.core.drawing import reachable_boundaries
from operators.core.registry import get_spec
from operators.core.result import CaseResult


def coverage_summary(results: Iterable[CaseResult]) -> dict[str, dict[str, Any]]:
    by_operator: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_operator[result.case.operator].append(result)
    summary = {}
    for operator, rows in by_operator.items():
        spec = get_spec(operator)
        hit = coverage(spec.boundary_labels(r.case) for r in rows)
        reachable = reachable_boundaries(spec, rows[0].device)
        summary[operator] = {
            "boundaries": hit,
            "boundaries_missed": [label for label in reachable if label not in hit],
            "regimes": dict(sorted(Counter(r.case.regime.value for r in rows).items())),
        }
    return summary


def coverage_table(coverage: Mapping[str, Mapping[str, Any]]) -> str:
    def counts(items: Mapping[str, int]) -> str:
        return ", ".join(f"{name} {count}" for name, count in items.items()) or "-"

    rows = [[operator, counts(c["boundaries"]), ", ".join(c["boundaries_missed"]) or "none", counts(c["regimes"])]
            for operator, c in coverage.items()]
    return tabulate(rows, headers=["operator", "boundary classes (cases)", "missed", "regimes (cases)"],
                    tablefmt="github")
